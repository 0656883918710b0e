//! Replays the bad-input corpus through the real daemon.
//!
//! `tests/corpus/cases.json` (written by `tools/corpus/make_corpus.py`, plus
//! inputs found by fuzzing, `fuzz-*`) lists one `POST /v1/predict` per case:
//! the file under `tests/corpus/` is the body, sent with the case's
//! Content-Type (raw image bytes, or a whole multipart/form-data body
//! verbatim) and query string. Each case must get its exact status and
//! error code with a non-empty message, must not make the daemon's memory
//! peak jump (lying headers are refused before anything is allocated), and
//! the daemon must still answer a good request afterwards. Every failing
//! case is listed, not only the first.

mod common;

use common::*;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    file: String,
    /// "raw" (the file is the image) or "multipart" (the file is the form).
    mode: String,
    /// Empty: no Content-Type header at all.
    content_type: String,
    query: String,
    status: u16,
    /// Empty for 200.
    code: String,
    why: String,
    /// What the daemon answers today instead, for a gap listed in the
    /// docs/not-done-yet.md: accepted exactly, and a failure once the gap is closed so the
    /// case gets updated.
    #[serde(default)]
    known_gap: Option<Gap>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Gap {
    status: u16,
    code: String,
    why: String,
}

fn dir() -> PathBuf {
    root().join("tests/corpus")
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(dir().join("cases.json")).unwrap();
    serde_json::from_str(&text).expect("tests/corpus/cases.json does not parse")
}

/// The SPEC's error table: code -> status.
const CODES: [(&str, u16); 15] = [
    ("bad_request", 400),
    ("unauthorized", 401),
    ("forbidden", 403),
    ("not_found", 404),
    ("payload_too_large", 413),
    ("image_too_large", 413),
    ("unsupported_media_type", 415),
    ("invalid_image", 422),
    ("point_out_of_bounds", 422),
    ("rate_limited", 429),
    ("overloaded", 503),
    ("not_ready", 503),
    ("timeout", 504),
    ("method_not_allowed", 405),
    ("internal", 500),
];

/// The daemon's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib(d: &Daemon) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", d.child.id())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A case's query parameter (no percent-decoding: enough for top, models).
fn param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .rfind(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// What is wrong with the answer to `case`, if anything.
fn judge(case: &Case, r: &Response, labels: &BTreeMap<String, usize>) -> Result<(), String> {
    let text = || {
        let t = r.text();
        let t = t.trim();
        if t.len() > 300 {
            format!(
                "{}...",
                &t[..t.char_indices().nth(300).map_or(t.len(), |(i, _)| i)]
            )
        } else {
            t.to_string()
        }
    };
    let json: Option<serde_json::Value> = serde_json::from_slice(&r.body).ok();
    if r.status != 200 {
        let Some(json) = json else {
            return Err(format!(
                "expected {} {}, got {} with a body that is not JSON: {}",
                case.status,
                case.code,
                r.status,
                text()
            ));
        };
        let code = json["error"]["code"].as_str().unwrap_or("");
        let message = json["error"]["message"].as_str().unwrap_or("");
        if (r.status, code) != (case.status, case.code.as_str()) {
            return Err(format!(
                "expected {} {}, got {} {code}: {}",
                case.status,
                if case.code.is_empty() {
                    "OK"
                } else {
                    &case.code
                },
                r.status,
                text()
            ));
        }
        if message.trim().is_empty() {
            return Err(format!(
                "{} {code} without an error message: {}",
                r.status,
                text()
            ));
        }
        return Ok(());
    }
    if case.status != 200 {
        let size = json
            .as_ref()
            .map(|j| format!("{}x{}", j["image"]["width"], j["image"]["height"]))
            .unwrap_or_default();
        return Err(format!(
            "expected {} {}, got 200 (a {size} image was served)",
            case.status, case.code
        ));
    }
    let Some(json) = json else {
        return Err(format!("200 with a body that is not JSON: {}", text()));
    };
    // The models asked for (all by default), each with min(top, labels) labels.
    let top: usize = param(&case.query, "top").map_or(5, |t| t.parse().unwrap());
    let wanted: Vec<String> = match param(&case.query, "models") {
        Some(m) => m.split(',').map(str::to_string).collect(),
        None => labels.keys().cloned().collect(),
    };
    let got: BTreeSet<String> = json["predictions"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    if got != wanted.iter().cloned().collect() {
        return Err(format!(
            "200 with predictions for {got:?}, asked for {wanted:?}"
        ));
    }
    for model in &wanted {
        let n = json["predictions"][model].as_array().map_or(0, Vec::len);
        if n != top.min(labels.get(model).copied().unwrap_or(0)) {
            return Err(format!("200 with {n} {model} labels for top={top}"));
        }
    }
    Ok(())
}

#[test]
fn every_corpus_case_gets_its_exact_answer_and_the_daemon_survives() {
    let cases = cases();
    let mut d = Daemon::start("");
    let models = d.get("/v1/models").json();
    let labels: BTreeMap<String, usize> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_string(),
                m["labels"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    // A case may raise the daemon's memory peak by this much at most; a
    // header that slips past max-pixels costs gigabytes, not megabytes.
    const GROWTH_KIB: u64 = 256 * 1024;
    let mut peak = peak_rss_kib(&d);
    println!("daemon peak RSS after start: {} MiB", peak / 1024);
    let mut failures = Vec::new();
    let mut gaps = Vec::new();
    for case in &cases {
        let body = std::fs::read(dir().join(&case.file)).unwrap();
        let path = if case.query.is_empty() {
            "/v1/predict".to_string()
        } else {
            format!("/v1/predict?{}", case.query)
        };
        let mut headers = Vec::new();
        if !case.content_type.is_empty() {
            headers.push(("Content-Type", case.content_type.as_str()));
        }
        let started = Instant::now();
        let answer = try_request(&d.socket, "POST", &path, &headers, &body);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match &answer {
            Ok(r) => {
                let code = serde_json::from_slice::<serde_json::Value>(&r.body)
                    .ok()
                    .and_then(|j| j["error"]["code"].as_str().map(str::to_string))
                    .unwrap_or_default();
                let verdict = match (&case.known_gap, judge(case, r, &labels)) {
                    (Some(g), Err(_))
                        if (g.status, g.code.as_str()) == (r.status, code.as_str()) =>
                    {
                        gaps.push(case.name.clone());
                        Ok(())
                    }
                    (Some(_), Ok(())) => {
                        Err("the known gap is closed: drop known_gap from the case".to_string())
                    }
                    (_, verdict) => verdict,
                };
                println!(
                    "{:<6} {:<48} {} {:<24} {ms:>7.1} ms",
                    if verdict.is_ok() { "ok" } else { "FAIL" },
                    case.name,
                    r.status,
                    serde_json::from_slice::<serde_json::Value>(&r.body)
                        .ok()
                        .and_then(|j| j["error"]["code"].as_str().map(str::to_string))
                        .unwrap_or_default(),
                );
                if let Err(e) = verdict {
                    failures.push(format!("{} ({}): {e}", case.name, case.file));
                }
            }
            Err(e) => {
                println!("FAIL   {:<48} no answer: {e}", case.name);
                failures.push(format!(
                    "{} ({}): expected {} {}, got no answer: {e}",
                    case.name, case.file, case.status, case.code
                ));
            }
        }
        let now = peak_rss_kib(&d);
        if now > peak + GROWTH_KIB {
            failures.push(format!(
                "{} ({}): the daemon's peak memory grew by {} MiB",
                case.name,
                case.file,
                (now - peak) / 1024
            ));
        }
        peak = peak.max(now);
        let alive =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d.assert_still_serves()));
        if alive.is_err() {
            failures.push(format!(
                "{} ({}): the daemon no longer serves afterwards; stderr:\n{}",
                case.name,
                case.file,
                d.stderr()
            ));
            // A fresh daemon for the remaining cases, so all of them report.
            d = Daemon::start("");
            peak = peak_rss_kib(&d);
        }
    }
    println!("daemon peak RSS at the end: {} MiB", peak / 1024);
    println!(
        "known gaps (answered as docs/not-done-yet.md says): {}",
        gaps.join(", ")
    );
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn manifest_and_folder_agree() {
    let cases = cases();
    let mut problems = Vec::new();
    let used: BTreeSet<&str> = cases.iter().map(|c| c.file.as_str()).collect();
    let present: BTreeSet<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "cases.json")
        .collect();
    for f in &present {
        if !used.contains(f.as_str()) {
            problems.push(format!("{f}: in tests/corpus but no case uses it"));
        }
    }
    let mut names = BTreeSet::new();
    let codes: BTreeMap<&str, u16> = CODES.into_iter().collect();
    for c in &cases {
        let n = &c.name;
        if !names.insert(n.as_str()) {
            problems.push(format!("{n}: two cases of this name"));
        }
        if !present.contains(&c.file) {
            problems.push(format!("{n}: its file {} is not in tests/corpus", c.file));
        }
        if c.why.trim().is_empty() {
            problems.push(format!("{n}: no why"));
        }
        match c.mode.as_str() {
            "raw" => {}
            "multipart" if c.content_type.starts_with("multipart/form-data") => {}
            "multipart" => problems.push(format!("{n}: multipart with {:?}", c.content_type)),
            other => problems.push(format!("{n}: unknown mode {other:?}")),
        }
        if c.status == 200 {
            if !c.code.is_empty() {
                problems.push(format!("{n}: 200 with code {}", c.code));
            }
        } else if codes.get(c.code.as_str()) != Some(&c.status) {
            problems.push(format!(
                "{n}: {} {} is not a row of the SPEC's error table",
                c.status, c.code
            ));
        }
    }
    // The corpus exercises every error a bad upload can cause.
    let covered: BTreeSet<&str> = cases.iter().map(|c| c.code.as_str()).collect();
    for code in [
        "",
        "bad_request",
        "not_found",
        "image_too_large",
        "unsupported_media_type",
        "invalid_image",
        "point_out_of_bounds",
    ] {
        if !covered.contains(code) {
            problems.push(format!("no case answers {code:?}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
