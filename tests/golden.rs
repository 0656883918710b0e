//! tract runs both shipped graphs as TensorFlow does: the build script
//! wrote inputs and TensorFlow's outputs under tests/fixtures/golden; each
//! graph is loaded through predictd's own loader and must match them.

use predictd::config::Config;
use predictd::models::run_raw;
use std::path::Path;

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn tract_matches_tensorflow_on_both_graphs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let gold = root.join("tests/fixtures/golden");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(gold.join("manifest.json")).unwrap())
            .unwrap();
    let config = Config::default();
    let mut checked = 0;
    for entry in manifest.as_array().unwrap() {
        let name = entry["model"].as_str().unwrap();
        let mut spec = config
            .model(name)
            .expect("manifest names a shipped model")
            .clone();
        spec.graph = root.join(entry["graph"].as_str().unwrap());
        assert_eq!(spec.input, entry["input"].as_str().unwrap());
        assert_eq!(spec.output, entry["output"].as_str().unwrap());
        let shape: Vec<usize> = entry["input_shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(
            shape,
            vec![1, spec.input_height as usize, spec.input_width as usize, 3],
            "{name}: input size"
        );
        for case in entry["cases"].as_array().unwrap() {
            let case = case.as_str().unwrap();
            let input = read_f32(&gold.join(format!("{case}.input.f32")));
            let expected = read_f32(&gold.join(format!("{case}.output.f32")));
            let got = run_raw(&spec, &input).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(got.len(), expected.len(), "{case}: output length");
            let worst = got
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst < 1e-4,
                "{case}: max abs difference {worst} with TensorFlow"
            );
            let sum: f32 = got.iter().sum();
            assert!(
                (sum - 1.0).abs() < 1e-3,
                "{case}: probabilities sum to {sum}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "expected at least two cases per model, checked {checked}"
    );
}
