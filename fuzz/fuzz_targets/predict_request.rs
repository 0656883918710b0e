//! Arbitrary `POST /v1/predict` requests through the daemon's own parser
//! (`predictd::fuzzing::predict_request`, whose doc gives the input layout).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| predictd::fuzzing::predict_request(data));
