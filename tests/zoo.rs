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
use predictd::inference::run_raw;
use std::path::{Path, PathBuf};
use std::process::Command;

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
    entries("tests/fixtures/zoo/manifest.json")
}

fn entries(manifest: &str) -> Vec<Entry> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join(manifest)).unwrap()).unwrap();
    manifest
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let shape: Vec<u32> = json_dims(&e["input_shape"])
                .into_iter()
                .map(|d| d as u32)
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
    let zoo = zoo();
    assert!(zoo.len() >= 17, "the zoo has {} graphs", zoo.len());
    assert_equal_to_references(&zoo);
}

/// One small graph per op spelling the loader translates (tools/zoo/ops.py):
/// LRN, MirrorPad, PadV2 with int64 paddings, a slice with a new axis,
/// Exp/Log/Pow/Maximum/Minimum/Erf/SquaredDifference, IdentityN with two
/// outputs, PlaceholderWithDefault and StopGradient, Concat v1 with
/// FusedBatchNormV2, a Reshape through Shape/StridedSlice/Pack.
#[test]
fn every_op_spelling_equals_tensorflow() {
    let ops = entries("tests/fixtures/zoo/ops/manifest.json");
    assert!(ops.len() >= 9, "{} op graphs", ops.len());
    assert_equal_to_references(&ops);
}

fn assert_equal_to_references(zoo: &[Entry]) {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for e in zoo {
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
            let gold = e.graph.parent().unwrap();
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
                    let worst = max_abs_difference(&got, &expected);
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

/// The `[[model]]` section `predictd inspect` prints for `graph`, with its
/// labels put in `dir`.
fn inspected_section(graph: &Path, labels: &Path) -> String {
    let out = Command::new(BIN)
        .arg("inspect")
        .arg(graph)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "inspect {}: {}",
        graph.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let section = &text[text.find("[[model]]").expect("inspect prints a section")..];
    section
        .lines()
        .map(|l| {
            if l.starts_with("labels = ") {
                format!("labels = {:?}", labels.display().to_string())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Serving a new graph is: inspect, paste, check. Every zoo graph's
/// section comes from `predictd inspect`, `predictd check` passes on all
/// of them, and a daemon serves a photo to all of them at once.
#[test]
fn inspect_prints_sections_that_check_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let zoo = zoo();
    let mut sections = String::new();
    for e in &zoo {
        let labels = labels(dir.path(), &e.name, e.classes);
        let section = inspected_section(&e.graph, &labels);
        assert!(
            section.contains(&format!("input-height = {}\n", e.size.0))
                && section.contains(&format!("input-width = {}\n", e.size.1)),
            "{}: the input size from the graph:\n{section}",
            e.name
        );
        assert!(
            section.contains(&format!("# one label a line, {} lines", e.classes)),
            "{}: the classes from the output's shape:\n{section}",
            e.name
        );
        if e.name == "inception_v3_2015" {
            // retrain.py's names, and the normalization its graph does.
            for line in [
                "input = \"Mul\"",
                "output = \"final_result\"",
                "input-mean = 128.0",
                "input-std = 128.0",
            ] {
                assert!(section.contains(line), "{line}:\n{section}");
            }
        }
        if e.layout == Layout::Nchw {
            assert!(section.contains("layout = \"nchw\""), "{section}");
        }
        sections.push_str(&section);
        sections.push('\n');
    }
    let config = write_config(dir.path(), "", Some(&sections));
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "check: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    for e in &zoo {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&format!("ok {} ", e.name))),
            "check did not pass {}: {stdout}",
            e.name
        );
    }
    let d = Daemon::spawn(dir, config);
    let names: Vec<&str> = zoo.iter().map(|e| e.name.as_str()).collect();
    let r = d.predict(
        &format!("x=100&y=100&models={}", names.join(",")),
        &photo("skimage-coffee.jpg"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    for e in &zoo {
        let got = answer["predictions"][&e.name].as_array().unwrap();
        assert_eq!(got.len(), 5.min(e.classes), "{}: {answer}", e.name);
        let sum: f64 = got.iter().map(|p| p["probability"].as_f64().unwrap()).sum();
        assert!(sum > 0.0 && sum <= 1.0 + 1e-4, "{}: {sum}", e.name);
    }
}

/// A graph with ops no one supports gets one error naming each of them,
/// with its count and first node, from `check` and from `inspect`.
#[test]
fn every_unsupported_op_is_named_at_once() {
    use tract_tensorflow::tfpb::{self, tensorflow::DataType};
    let dir = tempfile::tempdir().unwrap();
    let graph = tfpb::graph()
        .node(
            tfpb::node()
                .name("input")
                .op("Placeholder")
                .attr("dtype", DataType::DtFloat),
        )
        .node(tfpb::node().name("a").op("FancyOp").input("input"))
        .node(tfpb::node().name("b").op("FancyOp").input("a"))
        .node(tfpb::node().name("c").op("OtherOp").input("b"))
        .node(tfpb::node().name("out").op("Softmax").input("c"));
    let path = dir.path().join("odd.pb");
    std::fs::write(&path, graph.write_to_bytes().unwrap()).unwrap();
    let labels = labels(dir.path(), "odd", 3);
    let section = format!(
        "[[model]]\nname = \"odd\"\ngraph = {:?}\nlabels = {:?}\ninput = \"input\"\n\
         output = \"out\"\ninput-width = 8\ninput-height = 8\ninput-mean = 0.0\ninput-std = 1.0\n",
        path.display().to_string(),
        labels.display().to_string()
    );
    let config = write_config(dir.path(), "", Some(&section));
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{stderr}");
    assert!(
        stderr.contains("2 op(s) of the graph are not supported")
            && stderr.contains("FancyOp (2 node(s), first \"a\")")
            && stderr.contains("OtherOp (1 node(s), first \"c\")"),
        "{stderr}"
    );
    let out = Command::new(BIN)
        .arg("inspect")
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NOT SUPPORTED") && text.contains("FancyOp (2 node(s), first \"a\")"),
        "{text}"
    );
}
