//! The Python client (`clients/python`), installed the way users install
//! it (`pip install clients/python`, into clients/python/.venv), and its
//! unittest suites run against this build of the daemon: the misbehaving
//! servers, the real daemon restarted and reloaded under load, and the
//! example application under fire. Their printed counts show with
//! `cargo test --test python_client -- --nocapture`.

mod common;

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;

/// The suites run one at a time: the flood of one would slow the
/// deadlines of the other, and both reinstall the client into the same
/// venv. nextest runs each test in a process of its own, so the lock is a
/// file lock (a static mutex would hold within one process only).
fn serial() -> File {
    let path = std::env::temp_dir().join("predictd-python-client-tests.lock");
    let file = File::create(&path).expect("the lock file");
    file.lock().expect("the lock");
    file
}

fn venv_python() -> PathBuf {
    let client = common::root().join("clients/python");
    let venv = client.join(".venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "python3 -m venv failed");
    }
    // Installed again every run, so the tests use this checkout's client.
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--force-reinstall",
        ])
        .arg(&client)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip install clients/python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

fn run_suite(module: &str) {
    let _serial = serial();
    let python = venv_python();
    let out = Command::new(&python)
        .args(["-m", "unittest", "-v", module])
        .current_dir(common::root().join("clients/python/tests"))
        .env("PREDICTD_BIN", common::BIN)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}\n{stderr}");
    assert!(out.status.success(), "{module} failed:\n{stdout}\n{stderr}");
    // unittest reports skips as "OK (skipped=N)": none may skip here.
    assert!(
        !stderr.contains("skipped"),
        "{module}: a test skipped:\n{stderr}"
    );
}

#[test]
fn python_client_against_misbehaving_servers_and_the_daemon() {
    run_suite("test_client");
}

#[test]
fn python_application_under_fire() {
    run_suite("test_under_fire");
}
