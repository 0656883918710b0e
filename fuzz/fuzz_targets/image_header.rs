//! The image path before any model: format sniffing, the header's claimed
//! size, and a full decode with a small pixel limit, so a header claiming a
//! huge image must be refused before anything is allocated (libFuzzer's
//! -rss_limit_mb catches the ones that are not).
#![no_main]

use libfuzzer_sys::fuzz_target;
use predictd::imaging;

fuzz_target!(|data: &[u8]| {
    let _ = imaging::sniff(data);
    let _ = imaging::header_dimensions(data);
    if let Ok(decoded) = imaging::decode(data, 1 << 20) {
        assert!(u64::from(decoded.width()) * u64::from(decoded.height()) <= 1 << 20);
    }
});
