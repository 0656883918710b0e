//! The image cache: several clicks on one photo decode it once, the answers
//! are the same with and without the cache, and `/metrics` shows it.

mod common;
use common::*;

/// Everything of an answer that does not change between identical requests.
fn answer(r: &Response) -> serde_json::Value {
    assert_eq!(r.status, 200, "{}", r.text());
    let mut v = r.json();
    let o = v.as_object_mut().unwrap();
    o.remove("id");
    o.remove("timing_ms");
    v
}

#[test]
fn clicks_on_one_photo_decode_it_once_and_answer_as_without_the_cache() {
    let cached = Daemon::start("");
    let uncached = Daemon::start("image-cache-bytes = 0");
    // photos of three sizes, and points in every corner of the theme window
    let photos = [
        "skimage-coffee.jpg",
        "sklearn-china.jpg",
        "tuxpaint-strawberry2.jpg",
    ];
    let points = [
        "x=10&y=20",
        "x=200&y=150",
        "x=150&y=300",
        "x=5&y=5&models=theme",
    ];
    for name in photos {
        let body = photo(name);
        for point in points {
            let with = cached.predict(point, &body);
            let without = uncached.predict(point, &body);
            assert_eq!(answer(&with), answer(&without), "{name} at {point}");
        }
    }
    let m = cached.get("/metrics").text();
    assert_eq!(metric(&m, "predictd_image_cache_misses_total"), 3.0, "{m}");
    assert_eq!(metric(&m, "predictd_image_cache_hits_total"), 9.0, "{m}");
    assert_eq!(metric(&m, "predictd_image_cache_images"), 3.0, "{m}");
    assert!(metric(&m, "predictd_image_cache_bytes") > 0.0, "{m}");
    let m = uncached.get("/metrics").text();
    assert_eq!(metric(&m, "predictd_image_cache_hits_total"), 0.0, "{m}");
    assert_eq!(metric(&m, "predictd_image_cache_misses_total"), 0.0, "{m}");
}

#[test]
fn the_cache_stays_within_its_bound() {
    // room for one 640x427 photo (820 kB of pixels), not two
    let d = Daemon::start("image-cache-bytes = 1000000");
    for name in [
        "sklearn-china.jpg",
        "sklearn-flower.jpg",
        "sklearn-china.jpg",
    ] {
        let r = d.predict("x=100&y=100", &photo(name));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let m = d.get("/metrics").text();
    assert_eq!(metric(&m, "predictd_image_cache_images"), 1.0, "{m}");
    assert!(
        metric(&m, "predictd_image_cache_bytes") <= 1_000_000.0,
        "{m}"
    );
    // the first photo was evicted by the second, so the third request missed
    assert_eq!(metric(&m, "predictd_image_cache_misses_total"), 3.0, "{m}");
    // a broken upload is not a cache entry, and still refused
    let r = d.predict("x=1&y=1", &photo("sklearn-china.jpg")[..5000]);
    assert_eq!(r.status, 422, "{}", r.text());
}
