//! Times each graph of a zoo manifest (`tests/fixtures/zoo/manifest.json`,
//! written by `tools/zoo/build.py`) through predictd's own loader, its
//! plan alone, without HTTP or decoding, fed the graph's first golden
//! input:
//!
//!     cargo run --release --example zoo_speed -- MANIFEST [RUNS] [THREADS]
//!
//! Prints one line a graph, `NAME MEDIAN_MS` (or `NAME error: REASON`),
//! for `benches/zoo.sh`, which sets TensorFlow's time beside it.

use predictd::config::{Config, Crop, Layout};
use predictd::inference::run_raw_timed;
use std::path::{Path, PathBuf};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(manifest) = args.get(1) else {
        eprintln!("usage: zoo_speed MANIFEST [RUNS] [THREADS]");
        std::process::exit(64);
    };
    let runs: usize = args.get(2).map_or(30, |r| r.parse().expect("RUNS"));
    let threads: usize = args.get(3).map_or(1, |t| t.parse().expect("THREADS"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(manifest).expect("the manifest reads");
    let entries: serde_json::Value = serde_json::from_str(&text).expect("the manifest parses");
    let labels_dir = std::env::temp_dir().join(format!("zoo-speed-{}", std::process::id()));
    std::fs::create_dir_all(&labels_dir).unwrap();
    for e in entries.as_array().expect("a list of graphs") {
        let name = e["name"].as_str().unwrap();
        let dims: Vec<usize> = e["input_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let classes = e["output_shape"][1].as_u64().unwrap() as usize;
        let nchw = e["layout"] == "nchw";
        let (h, w) = if nchw {
            (dims[2], dims[3])
        } else {
            (dims[1], dims[2])
        };
        let labels = labels_dir.join(format!("{name}.txt"));
        let lines: Vec<String> = (0..classes).map(|i| format!("class {i}")).collect();
        std::fs::write(&labels, lines.join("\n")).unwrap();
        let mut spec = Config::default().models[0].clone();
        spec.name = name.into();
        spec.graph = root.join(e["graph"].as_str().unwrap());
        spec.labels = labels;
        spec.input = e["input"].as_str().unwrap().into();
        spec.output = e["output"].as_str().unwrap().into();
        spec.input_height = h as u32;
        spec.input_width = w as u32;
        spec.layout = if nchw { Layout::Nchw } else { Layout::Nhwc };
        spec.crop = Crop::Fraction(1.0);
        spec.threads = threads;
        let case = e["cases"][0].as_str().unwrap();
        let input = read_f32(&spec.graph.with_file_name(format!("{case}.input.f32")));
        // run_raw takes what predictd's preprocessing makes: NHWC.
        let input = if nchw { to_nhwc(&input, h, w) } else { input };
        match run_raw_timed(&spec, &input, runs) {
            Ok(mut times) => {
                times.sort_by(f64::total_cmp);
                println!("{name} {:.3}", times[runs / 2]);
            }
            Err(err) => println!("{name} error: {err}"),
        }
    }
    let _ = std::fs::remove_dir_all(&labels_dir);
}

fn read_f32(path: &PathBuf) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn to_nhwc(planar: &[f32], h: usize, w: usize) -> Vec<f32> {
    let mut out = vec![0f32; planar.len()];
    for c in 0..3 {
        for i in 0..h * w {
            out[i * 3 + c] = planar[c * h * w + i];
        }
    }
    out
}
