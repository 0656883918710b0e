//! The graphs users bring: small versions of the standard architectures,
//! frozen by TensorFlow 2.15 the way users freeze them (Keras
//! applications through `convert_variables_to_constants_v2`) or written in
//! the op spellings of TF1 (slim, the 2015 Inception v3 of `retrain.py`),
//! and one ONNX export (tools/zoo/build.py wrote them and their golden
//! vectors). Each is loaded through predictd's own loader and must equal
//! TensorFlow (ONNX Runtime) within 1e-4; each is served by a daemon whose
//! `[[model]]` sections `predictd inspect` printed; `check` passes on them.

mod common;

use common::*;
use predictd::config::{Config, Crop, Layout, ModelConfig};
use predictd::models::run_raw;
use std::path::{Path, PathBuf};
use std::process::Command;

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

struct Entry {
    name: String,
    graph: PathBuf,
    input: String,
    output: String,
    layout: Layout,
    /// Height, width.
    size: (u32, u32),
    classes: usize,
    cases: Vec<String>,
}

fn zoo() -> Vec<Entry> {
    let dir = root().join("tests/fixtures/zoo");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    manifest
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let shape: Vec<u32> = e["input_shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect();
            let layout = match e["layout"].as_str().unwrap() {
                "nchw" => Layout::Nchw,
                _ => Layout::Nhwc,
            };
            let size = match layout {
                Layout::Nchw => (shape[2], shape[3]),
                Layout::Nhwc => (shape[1], shape[2]),
            };
            Entry {
                name: e["name"].as_str().unwrap().into(),
                graph: root().join(e["graph"].as_str().unwrap()),
                input: e["input"].as_str().unwrap().into(),
                output: e["output"].as_str().unwrap().into(),
                layout,
                size,
                classes: e["output_shape"][1].as_u64().unwrap() as usize,
                cases: e["cases"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().into())
                    .collect(),
            }
        })
        .collect()
}

/// Labels for `classes` outputs, next to the test's files.
fn labels(dir: &Path, name: &str, classes: usize) -> PathBuf {
    let path = dir.join(format!("{name}.labels.txt"));
    let text: String = (0..classes).map(|i| format!("class-{i}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn every_family_equals_its_reference() {
    let dir = tempfile::tempdir().unwrap();
    let zoo = zoo();
    assert!(zoo.len() >= 17, "the zoo has {} graphs", zoo.len());
    let mut failures = Vec::new();
    for e in &zoo {
        let mut spec: ModelConfig = Config::default().models[0].clone();
        spec.name = e.name.clone();
        spec.graph = e.graph.clone();
        spec.labels = labels(dir.path(), &e.name, e.classes);
        spec.input = e.input.clone();
        spec.output = e.output.clone();
        spec.input_height = e.size.0;
        spec.input_width = e.size.1;
        spec.layout = e.layout;
        spec.crop = Crop::Fraction(1.0);
        for case in &e.cases {
            let gold = root().join("tests/fixtures/zoo");
            let mut input = read_f32(&gold.join(format!("{case}.input.f32")));
            let expected = read_f32(&gold.join(format!("{case}.output.f32")));
            if e.layout == Layout::Nchw {
                // run_raw takes what predictd's preprocessing makes: NHWC.
                let (h, w) = (e.size.0 as usize, e.size.1 as usize);
                let planar = input.clone();
                for c in 0..3 {
                    for i in 0..h * w {
                        input[i * 3 + c] = planar[c * h * w + i];
                    }
                }
            }
            match run_raw(&spec, &input) {
                Err(err) => {
                    failures.push(format!("{case}: {err}"));
                    break;
                }
                Ok(got) => {
                    assert_eq!(got.len(), expected.len(), "{case}: output length");
                    let worst = got
                        .iter()
                        .zip(&expected)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0f32, f32::max);
                    eprintln!("{case}: max |difference| {worst:e}");
                    if !(worst <= 1e-4) {
                        failures.push(format!("{case}: max abs difference {worst}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
