//! Times one model's tract plan alone, without HTTP, decoding or cropping:
//!
//!     cargo run --release --example model_speed -- GRAPH SIZE [RUNS] [THREADS]
//!
//! e.g. `models/themeClassifier.pb 224`. Loads the graph with predictd's
//! own loader (the shipped theme model's settings, at SIZE x SIZE) and
//! prints the median and p90 milliseconds per inference over RUNS runs, on
//! THREADS threads (the `threads` key of a `[[model]]`; default: the shipped
//! theme model's).

use predictd::config::Config;
use predictd::inference::run_raw_timed;
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: model_speed GRAPH SIZE [RUNS] [THREADS]");
        std::process::exit(64);
    }
    let size: u32 = args[2].parse().expect("SIZE is a number");
    let runs: usize = args
        .get(3)
        .map(|r| r.parse().expect("RUNS is a number"))
        .unwrap_or(30);
    let mut spec = Config::default().model("theme").unwrap().clone();
    spec.graph = PathBuf::from(&args[1]);
    spec.input_width = size;
    spec.input_height = size;
    if let Some(t) = args.get(4) {
        spec.threads = t.parse().expect("THREADS is a number");
    }
    let input: Vec<f32> = (0..size * size * 3)
        .map(|i| ((i % 255) as f32 - 127.0) / 128.0)
        .collect();
    let mut times = run_raw_timed(&spec, &input, runs).expect("model runs");
    times.sort_by(f64::total_cmp);
    println!(
        "{} at {size}x{size}, {} thread(s): median {:.1} ms, p90 {:.1} ms over {runs} runs",
        args[1],
        spec.threads,
        times[runs / 2],
        times[runs * 9 / 10]
    );
}
