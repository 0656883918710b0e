//! The HTML page in a real headless Chromium, through `--http`.
//!
//! The browser side is `tests/browser/page_test.py` (Playwright driving
//! Debian's chromium). `tests/run` installs both and sets
//! `PREDICTD_BROWSER_PYTHON`; a bare `cargo test` without it skips these
//! tests with a message saying how to run them.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;

fn browser_python() -> Option<PathBuf> {
    match std::env::var_os("PREDICTD_BROWSER_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            skip(
                "page: browser test",
                "needs Chromium and Playwright; run tests/run (or tests/browser/setup.sh, then set \
                 PREDICTD_BROWSER_PYTHON=tests/browser/.venv/bin/python)",
            );
            None
        }
    }
}

fn run_page_test(python: &PathBuf, url: &str, screenshot: &str, extra: &[&str]) {
    let dir = root().join("target/page-test");
    std::fs::create_dir_all(&dir).unwrap();
    let screenshot = dir.join(screenshot);
    let svg = dir.join("drawing.svg");
    std::fs::write(
        &svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="120" height="80"><rect width="120" height="80" fill="teal"/></svg>"#,
    )
    .unwrap();
    let out = Command::new(python)
        .arg(root().join("tests/browser/page_test.py"))
        .args(["--url", url])
        .arg("--photo")
        .arg(root().join("tests/fixtures/photos/tuxpaint-strawberry2.jpg"))
        .args(["--x", "149", "--y", "333"])
        .args(["--expect-color", "red", "--expect-theme", "Food & Cooking"])
        .arg("--svg")
        .arg(&svg)
        .arg("--screenshot")
        .arg(&screenshot)
        .args(extra)
        .output()
        .expect("cannot run the browser test's python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(
        out.status.success(),
        "browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(
        screenshot.exists(),
        "no screenshot at {}",
        screenshot.display()
    );
}

#[test]
fn a_person_can_try_the_models_in_a_browser() {
    let Some(python) = browser_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "", None);
    let addr = format!("127.0.0.1:{}", free_port());
    let d = Daemon::spawn_args(dir, config, &["--http", &addr]);
    let page = d.get("/");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    // Self-contained: nothing is fetched from elsewhere.
    let html = page.text();
    for outside in ["http://", "https://", "//cdn", "@import"] {
        assert!(!html.contains(outside), "the page refers to {outside}");
    }
    run_page_test(&python, &format!("http://{addr}/"), "page.png", &[]);
    // The page's clicks went through the real API: the stats saw them.
    let stats = d.get("/v1/stats").json();
    assert_eq!(stats["models"]["theme"]["feedback"], 1, "{stats}");
    assert_eq!(stats["models"]["color"]["feedback"], 1, "{stats}");
}

#[test]
fn the_page_asks_for_the_token_when_http_needs_one() {
    let Some(python) = browser_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http-token = \"s3cret\"", None);
    let addr = format!("127.0.0.1:{}", free_port());
    let _d = Daemon::spawn_args(dir, config, &["--http", &addr]);
    run_page_test(
        &python,
        &format!("http://{addr}/"),
        "page-token.png",
        &["--token", "s3cret"],
    );
}
