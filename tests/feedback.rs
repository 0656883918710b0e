//! The feedback loop through the real daemon: predictions, what users
//! chose, hit rates in /v1/stats, the log surviving a crash, and /metrics
//! moving with traffic.

mod common;

use common::*;
use serde_json::{json, Value};

fn labels(answer: &Value, model: &str) -> Vec<String> {
    answer["predictions"][model]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["label"].as_str().unwrap().to_string())
        .collect()
}

fn feedback(d: &Daemon, id: &str, model: &str, chosen: &str) -> Response {
    let body = json!({"id": id, "model": model, "chosen": chosen}).to_string();
    d.post("/v1/feedback", "application/json", body.as_bytes())
}

#[test]
fn hit_rates_follow_what_users_chose_and_survive_a_crash() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("feedback.jsonl");
    let extra = format!("feedback-log = {:?}", log.display().to_string());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &extra, None);
    let d = Daemon::spawn(dir, config);

    let all_colors: Vec<String> = std::fs::read_to_string(root().join("labels/colors.txt"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    // Four predictions; for each, the user's choice is the first offered,
    // the third offered, a label that was not offered, and the first again.
    let shots = [
        ("tuxpaint-strawberry2.jpg", 149, 333),
        ("skimage-coffee.jpg", 100, 100),
        ("skimage-astronaut.jpg", 250, 100),
        ("skimage-coffee.jpg", 300, 200),
    ];
    let mut offered = Vec::new();
    for (name, x, y) in shots {
        let r = d.predict(&format!("x={x}&y={y}"), &photo(name));
        assert_eq!(r.status, 200, "{}", r.text());
        offered.push((
            r.json()["id"].as_str().unwrap().to_string(),
            labels(&r.json(), "color"),
        ));
    }
    let not_offered = |o: &[String]| all_colors.iter().find(|c| !o.contains(c)).unwrap().clone();
    let choices = [
        offered[0].1[0].clone(),
        offered[1].1[2].clone(),
        not_offered(&offered[2].1),
        offered[3].1[0].clone(),
    ];
    for ((id, _), chosen) in offered.iter().zip(&choices) {
        let r = feedback(&d, id, "color", chosen);
        assert_eq!(r.status, 204, "{}", r.text());
        assert!(r.body.is_empty());
    }
    // One theme choice too: the first offered.
    let theme_first = {
        let r = d.predict("x=149&y=333", &photo("tuxpaint-strawberry2.jpg"));
        let id = r.json()["id"].as_str().unwrap().to_string();
        let first = labels(&r.json(), "theme")[0].clone();
        assert_eq!(feedback(&d, &id, "theme", &first).status, 204);
        first
    };

    let check = |stats: &Value, predictions: u64| {
        let color = &stats["models"]["color"];
        assert_eq!(color["predictions"], predictions, "{stats}");
        assert_eq!(color["feedback"], 4, "{stats}");
        assert_eq!(color["top1"], 0.5, "{stats}");
        assert_eq!(color["top5"], 0.75, "{stats}");
        let per_label = &color["labels"][&choices[2]];
        assert_eq!(per_label["feedback"], 1, "{stats}");
        assert_eq!(per_label["top5"], 0.0, "{stats}");
        let versions = color["versions"].as_object().unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions.values().next().unwrap()["feedback"], 4);
        let theme = &stats["models"]["theme"];
        assert_eq!(theme["feedback"], 1);
        assert_eq!(theme["top1"], 1.0);
        assert_eq!(theme["labels"][&theme_first]["top1"], 1.0);
    };
    let stats = d.get("/v1/stats").json();
    check(&stats, 5);

    // Every acknowledged feedback is on disk, one JSON line each.
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["id"], offered[0].0.as_str());
    assert_eq!(lines[0]["model"], "color");
    assert!(lines[0]["version"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(lines[0]["offered"].as_array().unwrap().len(), 5);
    assert!(lines[0]["offered"][0]["probability"].as_f64().unwrap() > 0.0);
    assert_eq!(lines[1]["chosen"], choices[1].as_str());
    assert!(lines[0]["time"].as_str().unwrap().starts_with("20"));

    // Killed without a chance to flush: the log is read back on start.
    let config = d.config.clone();
    let dir = tempfile::tempdir().unwrap();
    let config2 = dir.path().join("predictd.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &d.dir.path().display().to_string(),
        &dir.path().display().to_string(),
    );
    std::fs::write(&config2, text).unwrap();
    drop(d); // SIGKILL
    let d = Daemon::spawn(dir, config2);
    let stats = d.get("/v1/stats").json();
    check(&stats, 0);
    // Predictions from before the restart are not remembered.
    let r = feedback(&d, &offered[0].0, "color", "red");
    r.assert_error(404, "not_found", "");
}

#[test]
fn feedback_errors_are_clear() {
    let d = Daemon::start("recent-predictions = 2");
    let coffee = photo("skimage-coffee.jpg");
    let r = d.predict("x=10&y=10&models=color", &coffee);
    let id = r.json()["id"].as_str().unwrap().to_string();
    // Every prediction is logged with what a data scientist needs (by the
    // daemon's log thread, so the line may follow the answer by a moment).
    let needle = format!("prediction: id={id} ");
    wait_until("the prediction's log line", 10, || {
        d.stderr().contains(&needle)
    });
    let log = d.stderr();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("prediction: id={id} ")))
        .unwrap_or_else(|| panic!("no prediction line for {id}:\n{log}"));
    let version = r.json()["models"]["color"].as_str().unwrap()[..19].to_string();
    let top = r.json()["predictions"]["color"][0]["label"]
        .as_str()
        .unwrap()
        .to_string();
    for part in [
        "uid=0".to_string(),
        format!("models=color@{version}"),
        "crop=color:9x9+6+6".to_string(),
        format!("top1=color:{top:?}:"),
        "decode_ms=".to_string(),
        "inference_ms=color:".to_string(),
        "total_ms=".to_string(),
    ] {
        assert!(line.contains(&part), "{part} missing from: {line}");
    }
    let cases: Vec<(&str, Response, u16, &str)> = vec![
        (
            "unknown id",
            feedback(&d, "0000", "color", "red"),
            404,
            "not_found",
        ),
        (
            "model not in that prediction",
            feedback(&d, &id, "theme", "Art"),
            404,
            "not_found",
        ),
        (
            "not a label of the model",
            feedback(&d, &id, "color", "mauve"),
            400,
            "bad_request",
        ),
        (
            "malformed JSON",
            d.post("/v1/feedback", "application/json", b"{\"id\": "),
            400,
            "bad_request",
        ),
        (
            "missing field",
            d.post(
                "/v1/feedback",
                "application/json",
                br#"{"id": "x", "model": "color"}"#,
            ),
            400,
            "bad_request",
        ),
        ("GET", d.get("/v1/feedback"), 405, "method_not_allowed"),
    ];
    for (name, r, status, code) in cases {
        r.assert_error(status, code, name);
    }
    assert_eq!(feedback(&d, &id, "color", "red").status, 204);
    // Only the last two predictions are remembered.
    d.predict("x=10&y=10&models=color", &coffee);
    d.predict("x=10&y=10&models=color", &coffee);
    let r = feedback(&d, &id, "color", "red");
    r.assert_error(404, "not_found", "");
}

#[test]
fn metrics_move_with_traffic() {
    let d = Daemon::start("rate-per-uid = 1000\nrate-burst = 1000");
    let before = d.get("/metrics");
    assert_eq!(before.status, 200);
    assert!(before
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let before = before.text();
    for line in before
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(line.starts_with("predictd_"), "{line}");
    }
    let coffee = photo("skimage-coffee.jpg");
    for _ in 0..3 {
        assert_eq!(d.predict("x=10&y=10", &coffee).status, 200);
    }
    assert_eq!(d.predict("x=10&y=10", b"not an image").status, 415);
    let r = d.predict("x=10&y=10", &coffee);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let top = labels(&r.json(), "color")[0].clone();
    assert_eq!(feedback(&d, &id, "color", &top).status, 204);
    assert_eq!(d.post("/v1/reload", "application/json", b"").status, 200);

    let after = d.get("/metrics").text();
    let grew = |series: &str, by: f64| {
        let (a, b) = (metric(&before, series), metric(&after, series));
        assert_eq!(b - a, by, "{series}: {a} -> {b}\n{after}");
    };
    grew(
        r#"predictd_requests_total{route="/v1/predict",status="200"}"#,
        4.0,
    );
    grew(
        r#"predictd_requests_total{route="/v1/predict",status="415"}"#,
        1.0,
    );
    grew(
        r#"predictd_request_duration_seconds_count{route="/v1/predict"}"#,
        5.0,
    );
    grew(
        r#"predictd_inference_duration_seconds_count{model="theme"}"#,
        4.0,
    );
    grew(r#"predictd_inference_batch_size_count{model="color"}"#, 4.0);
    grew("predictd_decode_duration_seconds_count", 4.0);
    grew(r#"predictd_feedback_total{model="color"}"#, 1.0);
    grew(r#"predictd_reloads_total{outcome="ok"}"#, 1.0);
    assert_eq!(
        metric(
            &after,
            r#"predictd_feedback_hit_ratio{model="color",rank="top1"}"#
        ),
        1.0
    );
    assert!(metric(&after, "predictd_process_resident_memory_bytes") > 10e6);
    assert!(
        after.contains(r#"predictd_queue_depth{model="theme"} 0"#),
        "{after}"
    );
    assert!(
        after.contains("predictd_model_load_duration_seconds{model=\"theme\",version=\"sha256:")
    );
    assert!(after.contains("predictd_model_loaded{model=\"color\",version=\"sha256:"));
}
