//! What the package installs: the systemd unit passes `systemd-analyze
//! verify` and the packaged config is accepted as it is.

mod common;
use common::*;
use std::process::Command;

#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(root().join("systemd/predictd.service")).unwrap();
    for needle in [
        "Type=forking",
        "PIDFile=/run/predictd/predictd.pid",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RuntimeDirectory=predictd",
        "Restart=on-failure",
        "User=predictd",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "serve --daemon",
    ] {
        assert!(unit.contains(needle), "unit lacks {needle}");
    }
    // verify checks that ExecStart exists: point it at the built binary.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("predictd.service");
    std::fs::write(&path, unit.replace("/usr/bin/predictd", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (.ci/run installs systemd)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains(&path.display().to_string()),
        "systemd-analyze verify: {err}"
    );
}

#[test]
fn packaged_config_is_accepted() {
    let out = Command::new(BIN)
        .args(["config", "--config"])
        .arg(root().join("packaging/predictd.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("socket = \"/run/predictd/predictd.sock\""));
    assert!(text.contains("/usr/share/predictd/models/themeClassifier.pb"));
    assert!(text.contains("feedback-log = \"/var/lib/predictd/feedback.jsonl\""));
}
