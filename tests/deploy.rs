//! The Kubernetes manifests of deploy/kubernetes/ are valid against the
//! Kubernetes schemas, unknown fields refused (deploy/kubernetes/validate.sh,
//! offline after its first run), and their probes run `predictd health`
//! on the socket the shipped config binds.

mod common;

use std::process::Command;

#[test]
fn kubernetes_manifests_validate() {
    let out = Command::new(common::root().join("deploy/kubernetes/validate.sh"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "validate.sh failed:\n{text}");
    assert_eq!(text.matches("passed for resource").count(), 3, "{text}");
}

#[test]
fn probes_ask_the_socket_of_the_shipped_config() {
    let config = std::fs::read_to_string(common::root().join("packaging/predictd.toml")).unwrap();
    let socket = config
        .lines()
        .find_map(|l| l.strip_prefix("socket = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    for file in ["daemonset.yaml", "sidecar.yaml"] {
        let text =
            std::fs::read_to_string(common::root().join("deploy/kubernetes").join(file)).unwrap();
        assert!(
            text.contains("readinessProbe") && text.contains("livenessProbe"),
            "{file}"
        );
        assert!(
            text.contains("\"health\""),
            "{file}: probes do not run predictd health"
        );
        assert!(text.contains(&socket), "{file} does not use {socket}");
    }
    let containerfile = std::fs::read_to_string(common::root().join("Containerfile")).unwrap();
    assert!(containerfile.contains(&socket));
}

#[test]
fn the_instance_unit_for_nginx_verifies() {
    let unit =
        std::fs::read_to_string(common::root().join("deploy/nginx/predictd@.service")).unwrap();
    assert!(unit.contains("RuntimeDirectory=predictd-%i"));
    common::verify_unit("predictd@1.service", &unit);
}
