//! The image path before any model (`predictd::fuzzing::image_header`):
//! sniffing, the header's claimed size, a decode with a small pixel limit,
//! and the parts a JPEG is read by when serving. libFuzzer's -rss_limit_mb
//! turns a header that slips past the limit into a reported crash.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| predictd::fuzzing::image_header(data));
