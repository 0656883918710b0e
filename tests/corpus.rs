//! Replays the bad-input corpus (`tests/corpus/cases.json`, written by
//! `tools/corpus/make_corpus.py`, plus inputs found by fuzzing) through the
//! real daemon: each case must get its exact status and error code, and the
//! daemon must still answer a good request after every one.

mod common;

use common::*;
use serde::Deserialize;
use std::collections::BTreeSet;

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Case {
    name: String,
    file: String,
    content_type: String,
    query: String,
    status: u16,
    code: String,
    why: String,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(root().join("tests/corpus/cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_corpus_input_gets_its_exact_answer_and_the_daemon_survives() {
    let d = Daemon::start("");
    let mut failures = Vec::new();
    let cases = cases();
    for case in &cases {
        let body = std::fs::read(root().join("tests/corpus").join(&case.file)).unwrap();
        let r = d.post(
            &format!("/v1/predict?{}", case.query),
            &case.content_type,
            &body,
        );
        let got_code = if r.status == 200 {
            String::new()
        } else {
            r.code()
        };
        if (r.status, got_code.as_str()) != (case.status, case.code.as_str()) {
            failures.push(format!(
                "{}: expected {} {:?}, got {} {}",
                case.name,
                case.status,
                case.code,
                r.status,
                r.text().trim()
            ));
        } else if r.status != 200 {
            let message = r.json()["error"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if message.is_empty() {
                failures.push(format!("{}: no error message", case.name));
            }
        } else {
            let answer = r.json();
            for model in ["color", "theme"] {
                if answer["predictions"][model].as_array().map(Vec::len) != Some(5) {
                    failures.push(format!("{}: no 5 {model} labels", case.name));
                }
            }
        }
        let alive = d.predict("x=100&y=100", &photo("skimage-coffee.jpg"));
        if alive.status != 200 {
            failures.push(format!(
                "after {}: the daemon no longer serves ({})",
                case.name, alive.status
            ));
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn manifest_and_folder_agree() {
    let cases = cases();
    let used: BTreeSet<String> = cases.iter().map(|c| c.file.clone()).collect();
    let present: BTreeSet<String> = std::fs::read_dir(root().join("tests/corpus"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "cases.json")
        .collect();
    assert_eq!(
        used, present,
        "files without a case, or cases without a file"
    );
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.len(), cases.len(), "case names must be unique");
    for c in &cases {
        assert!(!c.why.is_empty(), "{}: say why", c.name);
        assert_eq!(c.code.is_empty(), c.status == 200, "{}", c.name);
    }
    // Every error code the SPEC gives for bad input is in the corpus.
    let codes: BTreeSet<&str> = cases.iter().map(|c| c.code.as_str()).collect();
    for code in [
        "bad_request",
        "not_found",
        "forbidden",
        "image_too_large",
        "unsupported_media_type",
        "invalid_image",
        "point_out_of_bounds",
    ] {
        assert!(codes.contains(code), "no corpus case for {code}");
    }
}
