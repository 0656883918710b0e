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
        "ExecReload=/bin/sh -c 'kill -HUP $$1' predictd-reload $MAINPID",
        "SystemCallFilter=@chown",
        "SystemCallErrorNumber=EPERM",
        "RuntimeDirectory=predictd",
        "Restart=on-failure",
        "User=predictd",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "serve --daemon",
    ] {
        assert!(unit.contains(needle), "unit lacks {needle}");
    }
    verify_unit("predictd.service", &unit);
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
