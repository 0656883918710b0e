//! tract runs both shipped graphs as TensorFlow does: the build script
//! wrote inputs and TensorFlow's outputs under tests/fixtures/golden; each
//! graph is loaded through predictd's own loader and must match them.

mod common;

use common::{json_dims, max_abs_difference, read_f32};
use predictd::config::Config;
use predictd::inference::run_raw;
use std::path::Path;

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
        let shape = json_dims(&entry["input_shape"]);
        assert_eq!(
            shape,
            vec![1, spec.input_height as usize, spec.input_width as usize, 3],
            "{name}: input size"
        );
        // On one thread and on a pool of two (the `threads` key).
        for (case, threads) in entry["cases"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| [(c, 1), (c, 2)])
        {
            let case = case.as_str().unwrap();
            spec.threads = threads;
            let input = read_f32(&gold.join(format!("{case}.input.f32")));
            let expected = read_f32(&gold.join(format!("{case}.output.f32")));
            let got = run_raw(&spec, &input).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(got.len(), expected.len(), "{case}: output length");
            let worst = max_abs_difference(&got, &expected);
            assert!(
                worst < 1e-4,
                "{case} on {threads} thread(s): max abs difference {worst} with TensorFlow"
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
        checked >= 8,
        "expected at least two cases per model, checked {checked}"
    );
}

/// Every depthwise convolution of the theme CNN is followed in the graph by a
/// `BiasAdd`; in the plan predictd runs, that bias is the convolution's own
/// (see `predictd::inference::rewrite::fold`), so nothing after a depthwise convolution adds.
#[test]
fn no_depthwise_bias_or_relu6_runs_as_its_own_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut spec = Config::default().model("theme").unwrap().clone();
    spec.graph = root.join("models/themeClassifier.pb");
    spec.labels = root.join("labels/themes.txt");
    let plan = predictd::inference::optimized_plan(&spec).expect("the theme graph loads");
    let model = plan.model();
    let describe = |id: usize| {
        let op = model.nodes[id].op();
        format!("{} {:?}", op.name(), op.info().unwrap_or_default())
    };
    // The `tract` kernel family runs tract's own plan: none of this applies.
    if !predictd::inference::kernels::rewrites() {
        let ours = ["DepthwiseClip", "PointwiseClip"];
        assert!(!model.nodes.iter().any(|n| ours.contains(&&*n.op().name())));
        return;
    }
    // Each depthwise convolution, its bias and its ReLU6 are one op.
    let depthwise: Vec<usize> = (0..model.nodes.len())
        .filter(|&id| model.nodes[id].op().name() == "DepthwiseClip")
        .collect();
    assert_eq!(
        depthwise.len(),
        16,
        "the theme CNN's 16 depthwise convolutions, each fused with its ReLU6"
    );
    assert!(
        !(0..model.nodes.len()).any(|id| model.nodes[id].op().name() == "DepthWiseConv"),
        "a depthwise convolution left unfused"
    );
    for id in depthwise {
        assert!(describe(id).contains("clamp to [0, 6]"), "{}", describe(id));
        for succ in &model.nodes[id].outputs[0].successors {
            let after = describe(succ.node);
            assert!(
                !after.contains("Add") && !after.contains("Max") && !after.contains("Min"),
                "{} is followed by {after}",
                model.nodes[id].name
            );
        }
    }
    // The 32 1x1 convolutions are PointwiseClips with their bias and, for
    // the 16 with a ReLU6 after them, their clamp; the other 16
    // (projections) have no clamp.
    let pointwise: Vec<String> = (0..model.nodes.len())
        .filter(|&id| model.nodes[id].op().name() == "PointwiseClip")
        .map(describe)
        .collect();
    assert_eq!(pointwise.len(), 32, "{pointwise:?}");
    let clamped = pointwise
        .iter()
        .filter(|d| d.contains("clamp to [0, 6]"))
        .count();
    assert_eq!(clamped, 16, "{pointwise:?}");
    // The family's depthwise kernel is the one tract's registry gives.
    use predictd::inference::kernels::{family, Family};
    let expected = match family() {
        Family::Avx512 => "x86_64_avx512f_depthwise_c_f32",
        Family::Avx2 => "x86_64_avx2_fma_depthwise_c_f32",
        Family::Portable => "portable_depthwise_c_f32",
        Family::Tract => unreachable!("the tract family returned above"),
    };
    assert_eq!(predictd::inference::depthwise_kernel(), expected);
}

/// The tests of this file again in a process of their own for each kernel
/// family this machine runs (`PREDICTD_KERNELS`, chosen once a process):
/// TensorFlow's outputs hold on every path, whatever the CPU of the run.
#[test]
fn every_kernel_family_matches_tensorflow() {
    if std::env::var_os("PREDICTD_KERNELS").is_some() {
        return; // already one family's run
    }
    let mut families = vec!["portable", "tract"];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            families.push("avx2");
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            families.push("avx512");
        }
    }
    let me = std::env::current_exe().unwrap();
    for family in families {
        for test in [
            "tract_matches_tensorflow_on_both_graphs",
            "no_depthwise_bias_or_relu6_runs_as_its_own_pass",
            "the_fused_depthwise_equals_tracts_own_ops",
        ] {
            let out = std::process::Command::new(&me)
                .args(["--exact", test, "--test-threads=1"])
                .env("PREDICTD_KERNELS", family)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && text.contains("1 passed"),
                "{test} with PREDICTD_KERNELS={family}:\n{text}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn the_fused_depthwise_equals_tracts_own_ops() {
    use tract_tensorflow::prelude::*;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = Config::default().model("theme").unwrap().clone();
    // Both plans the same up to the fusions: tract's DepthWiseConv and
    // clamp, or predictd's DepthwiseClip; tract's matrix products for the
    // 1x1 convolutions with their bias and clamp, or predictd's
    // PointwiseClip (where AVX-512F runs).
    let plan = |fuse: bool| {
        let tf = tract_tensorflow::tensorflow();
        let mut m = tf
            .model_for_path(root.join("models/themeClassifier.pb"))
            .unwrap();
        m.set_input_names([spec.input.as_str()]).unwrap();
        m.set_input_fact(0, f32::fact([1, 224, 224, 3]).into())
            .unwrap();
        m.select_outputs_by_name([spec.output.as_str()]).unwrap();
        let mut m = m.into_typed().unwrap().into_decluttered().unwrap();
        predictd::inference::rewrite::fold::fold_depthwise_channel_ops(&mut m).unwrap();
        if fuse {
            assert_eq!(
                predictd::inference::rewrite::fold::fuse_depthwise_clip(&mut m).unwrap(),
                16
            );
            let pointwise = predictd::inference::rewrite::fold::fuse_pointwise(&mut m).unwrap();
            assert_eq!(pointwise, 32, "1x1 convolutions on predictd's kernel");
        }
        m.into_optimized().unwrap().into_runnable().unwrap()
    };
    let (theirs, ours) = (plan(false), plan(true));
    let mut seed = 11u64;
    for _ in 0..3 {
        let input: Vec<f32> = (0..224 * 224 * 3)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                ((seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        let input = tensor1(&input).into_shape(&[1, 224, 224, 3]).unwrap();
        let a = theirs.run(tvec!(input.clone().into())).unwrap();
        let b = ours.run(tvec!(input.into())).unwrap();
        let (a, b) = (
            a[0].to_plain_array_view::<f32>().unwrap(),
            b[0].to_plain_array_view::<f32>().unwrap(),
        );
        let worst = a
            .iter()
            .zip(b.iter())
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-5, "largest difference {worst}");
    }
}
