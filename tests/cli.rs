//! The command line: check, config, predict, exit codes.

mod common;
use common::*;
use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    run_env(args, &[])
}

/// Runs the binary in the checkout with `env` set.
fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(root())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_passes_on_the_shipped_models() {
    let (code, out, err) = run(&["check"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("ok color sha256:") && out.contains("ok theme sha256:"),
        "{out}"
    );
    // The kernels this machine runs, named (benches/compare.sh prints them).
    let kernels = out
        .lines()
        .find_map(|l| l.strip_prefix("kernels "))
        .unwrap_or_else(|| panic!("no kernels line: {out}"));
    assert!(
        [
            "family=avx512 depthwise=avx512f pointwise=avx512f",
            "family=avx2 depthwise=avx2_fma pointwise=avx2_fma",
            "family=portable depthwise=portable pointwise=portable"
        ]
        .contains(&kernels),
        "{kernels}"
    );
}

fn run_with_kernels(family: &str, args: &[&str]) -> (i32, String, String) {
    run_env(args, &[("PREDICTD_KERNELS", family)])
}

/// `PREDICTD_KERNELS` forces a kernel family: `check` names it, every
/// family this machine runs gives the same predictions (within rounding),
/// and an unknown family, or one the CPU cannot run, stops at start.
#[test]
fn kernel_families_are_chosen_by_the_environment() {
    let has = |f: &str| {
        #[cfg(target_arch = "x86_64")]
        match f {
            "avx512" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx2" => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            _ => true,
        }
        #[cfg(not(target_arch = "x86_64"))]
        matches!(f, "portable" | "tract")
    };
    let img = root().join("tests/fixtures/photos/skimage-coffee.jpg");
    let predict = |family: &str| {
        let (code, out, err) = run_with_kernels(
            family,
            &[
                "predict",
                "--json",
                "--x",
                "300",
                "--y",
                "200",
                img.to_str().unwrap(),
            ],
        );
        assert_eq!(code, 0, "{family}: {err}");
        serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()
    };
    let reference = predict("tract");
    for (family, line) in [
        (
            "avx512",
            "family=avx512 depthwise=avx512f pointwise=avx512f",
        ),
        ("avx2", "family=avx2 depthwise=avx2_fma pointwise=avx2_fma"),
        (
            "portable",
            "family=portable depthwise=portable pointwise=portable",
        ),
        ("tract", "family=tract depthwise="),
    ] {
        let (code, out, err) = run_with_kernels(family, &["check"]);
        if !has(family) {
            assert_eq!(code, 78, "{family} on a CPU without it: {out}{err}");
            assert!(err.contains("this CPU lacks"), "{err}");
            continue;
        }
        assert_eq!(code, 0, "{family}: {err}");
        assert!(out.contains(&format!("kernels {line}")), "{family}: {out}");
        let got = predict(family);
        for model in ["color", "theme"] {
            let (a, b) = (&got["predictions"][model], &reference["predictions"][model]);
            assert_eq!(a[0]["label"], b[0]["label"], "{family} {model}: {a} vs {b}");
            for (x, y) in a.as_array().unwrap().iter().zip(b.as_array().unwrap()) {
                let (x, y) = (
                    x["probability"].as_f64().unwrap(),
                    y["probability"].as_f64().unwrap(),
                );
                assert!((x - y).abs() < 1e-3, "{family} {model}: {a} vs {b}");
            }
        }
    }
    // Unset on a machine that runs both AVX families: chosen by a
    // self-benchmark, logged with its timings; forced: no benchmark.
    let unset = Command::new(BIN)
        .args(["check"])
        .current_dir(root())
        .env_remove("PREDICTD_KERNELS")
        .env("PREDICTD_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&unset.stderr);
    let benchmarked = log.lines().find(|l| l.contains("kernels: self-benchmark"));
    if has("avx512") && has("avx2") {
        let line = benchmarked.unwrap_or_else(|| panic!("no self-benchmark line:\n{log}"));
        assert!(
            line.contains("avx512 ") && line.contains("avx2 ") && line.contains(": family=avx"),
            "{line}"
        );
    } else {
        assert!(benchmarked.is_none(), "{log}");
    }
    let (_, _, log) = run_env(
        &["check"],
        &[("PREDICTD_KERNELS", "portable"), ("PREDICTD_LOG", "info")],
    );
    assert!(log.contains("model load:"), "logged at info: {log}");
    assert!(!log.contains("self-benchmark"), "{log}");
    let (code, _, err) = run_with_kernels("sse9", &["check"]);
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("\"sse9\" is no kernel family (avx512, avx2, portable or tract)"),
        "{err}"
    );
}

#[test]
fn check_fails_clearly_on_missing_and_corrupt_graphs() {
    let dir = tempfile::tempdir().unwrap();
    let missing = write_config(dir.path(), "", None);
    use_theme_graph(&missing, &root().join("models/nothere.pb"));
    let (code, _, err) = run(&["check", "--config", missing.to_str().unwrap()]);
    assert_eq!(code, 66, "EX_NOINPUT: {err}");
    assert!(
        err.contains("nothere.pb") && err.contains("No such file"),
        "{err}"
    );

    let corrupt_graph = dir.path().join("corrupt.pb");
    std::fs::write(&corrupt_graph, b"\x0a\x05hello this is not a graph").unwrap();
    let corrupt = write_config(dir.path(), "", None);
    use_theme_graph(&corrupt, &corrupt_graph);
    let (code, _, err) = run(&["check", "--config", corrupt.to_str().unwrap()]);
    assert_eq!(code, 65, "EX_DATAERR: {err}");
    assert!(
        err.contains("corrupt.pb") && err.contains("Model theme"),
        "{err}"
    );
}

#[test]
fn config_errors_name_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[server]\nsocket = \"x.sock\"\nmax-body = 3\n").unwrap();
    let (code, _, err) = run(&["check", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 78, "EX_CONFIG: {err}");
    assert!(err.contains("max-body") && err.contains("line 3"), "{err}");
}

#[test]
fn printed_config_is_complete_and_accepted() {
    let (code, out, _) = run(&["config"]);
    assert_eq!(code, 0);
    for key in [
        "socket",
        "socket-mode",
        "pidfile",
        "max-body-bytes",
        "max-pixels",
        "request-timeout-ms",
        "max-connections",
        "max-connections-per-uid",
        "image-roots",
        "allowed-uids",
        "admin-uids",
        "rate-per-uid",
        "rate-burst",
        "feedback-log",
        "http-token",
        "[[model]]",
        "input-width",
        "input-mean",
        "input-std",
        "crop",
        "workers",
        "queue",
        "softmax",
    ] {
        assert!(out.contains(key), "missing {key} in:\n{out}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("printed.toml");
    std::fs::write(&file, &out).unwrap();
    let (code, again, err) = run(&["config", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(again, out, "printing the printed config changes nothing");
}

#[test]
fn predict_in_process_prints_labels_and_json() {
    let img = root().join("tests/fixtures/photos/tuxpaint-strawberry2.jpg");
    let (code, out, err) = run(&["predict", "--x", "149", "--y", "333", img.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("color") && out.contains("red") && out.contains("Food & Cooking"),
        "{out}"
    );
    let (code, out, _) = run(&[
        "predict",
        "--json",
        "--top",
        "3",
        "--models",
        "theme",
        "--x",
        "149",
        "--y",
        "333",
        img.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["predictions"]["theme"].as_array().unwrap().len(), 3);
    let (code, _, err) = run(&["predict", "--x", "5000", "--y", "1", img.to_str().unwrap()]);
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("outside"), "{err}");
    let (code, _, _) = run(&["predict", "--x", "1", "--y", "1", "/nonexistent.jpg"]);
    assert_eq!(code, 66);
    let (code, _, _) = run(&["predict", "--x", "1"]);
    assert_eq!(code, 64, "usage error");
}

#[test]
fn predict_through_a_running_daemon() {
    let d = Daemon::start("");
    let img = root().join("tests/fixtures/photos/skimage-coffee.jpg");
    let (code, out, err) = run(&[
        "predict",
        "--socket",
        d.socket.to_str().unwrap(),
        "--json",
        "--x",
        "300",
        "--y",
        "200",
        img.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["predictions"]["theme"][0]["label"], "Drinks");
    let (code, _, err) = run(&[
        "predict",
        "--socket",
        "/nonexistent.sock",
        "--x",
        "1",
        "--y",
        "1",
        img.to_str().unwrap(),
    ]);
    assert_eq!(code, 69, "EX_UNAVAILABLE: {err}");
}
