//! `max-decoding-pixels` bounds the memory that concurrent large uploads
//! take: the same burst of 12 MP photos, with and without a tight budget.

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

/// Sends `n` copies of `photo` at once; every one must be answered 200.
/// Returns how much the daemon's peak resident memory grew, in MiB.
fn burst(budget: u64, photo: &[u8], n: usize) -> u64 {
    // No image cache: each request must decode, as distinct photos would.
    let d = Daemon::start(&format!(
        "max-decoding-pixels = {budget}\nrequest-timeout-ms = 120000\nimage-cache-bytes = 0"
    ));
    // one request first, so both daemons start from warm models
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
    println!("max-decoding-pixels {budget}: {n} photos at once raised the peak by {grown} MiB");
    grown
}

#[test]
fn a_decoding_budget_bounds_the_memory_of_a_burst_of_large_photos() {
    let photo = camera_photo();
    let n = 6;
    let open = burst(1_000_000_000, &photo, n);
    let tight = burst(12_000_000, &photo, n);
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
