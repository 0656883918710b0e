//! The image path before any model: format sniffing, the header's claimed
//! size, a full decode with a small pixel limit (a header claiming a huge
//! image must be refused before anything is allocated; libFuzzer's
//! -rss_limit_mb catches the ones that are not), and the parts a JPEG is
//! read by when serving: a plane at each DCT scale and a rectangle around a
//! point, with and without reading on to the end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use predictd::imaging;
use predictd::source::{Need, Source};

fuzz_target!(|data: &[u8]| {
    let _ = imaging::sniff(data);
    let _ = imaging::header_dimensions(data);
    if let Ok(decoded) = imaging::decode(data, 1 << 20) {
        assert!(u64::from(decoded.width()) * u64::from(decoded.height()) <= 1 << 20);
    }
    let Ok(source) = Source::open(bytes::Bytes::copy_from_slice(data), 1 << 20) else {
        return;
    };
    let (w, h) = (source.width, source.height);
    let (x, y) = (w / 2, h / 3);
    let rect = Need::Rect(x.saturating_sub(4), y.saturating_sub(4), (x + 5).min(w), (y + 5).min(h));
    for check_rest in [false, true] {
        if let Ok(view) = source.view(rect, check_rest, 1 << 20) {
            assert!(view.image.width() <= 9 && view.image.height() <= 9);
        }
    }
    for scale in [8, 4, 2, 1] {
        if let Ok(view) = source.view(Need::Plane(scale), false, 1 << 20) {
            let want = (w.div_ceil(scale), h.div_ceil(scale));
            assert_eq!(view.image.dimensions(), want);
        }
    }
});
