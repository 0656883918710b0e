//! Memory under bursts of large uploads: `max-decoding-pixels` bounds what
//! concurrent whole decodes take (the same burst of 12 MP PNGs with and
//! without a tight budget), and 12 MP JPEGs are never decoded whole.

mod common;
use common::*;

fn rss_kib(d: &Daemon, field: &str) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Sends `n` copies of `photo` at once to a daemon with `config` (and no
/// image cache: each request must decode, as distinct photos would); every
/// one must be answered 200. Returns how much the daemon's peak resident
/// memory grew, in MiB.
fn burst(config: &str, photo: &[u8], n: usize) -> u64 {
    let d = Daemon::start(&format!(
        "{config}\nrequest-timeout-ms = 120000\nimage-cache-bytes = 0"
    ));
    // one request first, so every daemon starts from warm models
    let r = d.predict("x=2000&y=1500", photo);
    assert_eq!(r.status, 200, "{}", r.text());
    let before = rss_kib(&d, "VmHWM:");
    std::thread::scope(|s| {
        for i in 0..n {
            let d = &d;
            s.spawn(move || {
                let r = d.predict(&format!("x={}&y={}", 100 + i * 500, 100 + i * 300), photo);
                assert_eq!(r.status, 200, "{}", r.text());
            });
        }
    });
    let grown = rss_kib(&d, "VmHWM:").saturating_sub(before) / 1024;
    println!("{config}: {n} photos at once raised the peak by {grown} MiB");
    grown
}

/// A 12 MP PNG: a format that is decoded whole (36 MB of pixels).
fn large_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(4000, 3000, |x, y| {
        image::Rgb([(x / 16) as u8, (y / 12) as u8, ((x + y) / 28) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn a_decoding_budget_bounds_the_memory_of_a_burst_of_large_photos() {
    let photo = large_png();
    let n = 6;
    let open = burst("max-decoding-pixels = 1000000000", &photo, n);
    let tight = burst("max-decoding-pixels = 12000000", &photo, n);
    // One 12 MP photo at a time: its decode, its window and the models'
    // inputs; six at once take several times that.
    assert!(
        tight * 2 < open,
        "a budget of one photo raised the peak by {tight} MiB, no budget by {open} MiB"
    );
    assert!(
        tight < 250,
        "one photo at a time raised the peak by {tight} MiB"
    );
}

/// A 12 MP JPEG is read at the size the models need (its theme window at
/// 1/8, its color patch by rectangle), so even with no budget at all six at
/// once take less than two full-size decodes would (2 x 36 MB).
#[test]
fn large_jpegs_are_never_decoded_at_full_size() {
    let grown = burst("max-decoding-pixels = 1000000000", &camera_photo(), 6);
    assert!(
        grown < 72,
        "six 12 MP JPEGs at once raised the peak by {grown} MiB"
    );
}
