//! The daemon as the tagging application uses it: real photos in, colors
//! and themes out, every error code from a real request, and the daemon
//! still serving after each.

mod common;
use common::*;

fn top_labels(answer: &serde_json::Value, model: &str) -> Vec<String> {
    answer["predictions"][model]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn real_photos_get_sensible_colors_and_themes() {
    let d = Daemon::start("");
    // (photo, point, a theme, how high it must rank, a color that must be first)
    let cases = [
        ("skimage-coffee.jpg", (300, 200), "Drinks", 1, None),
        ("skimage-chelsea.jpg", (214, 152), "Animals & Pets", 1, None),
        (
            "tuxpaint-strawberry2.jpg",
            (149, 333),
            "Food & Cooking",
            1,
            Some("red"),
        ),
        (
            "tuxpaint-orange_seville.jpg",
            (203, 189),
            "Food & Cooking",
            1,
            Some("orange"),
        ),
        ("tuxpaint-747.jpg", (262, 145), "Aviation", 1, None),
        // ImageNet has no daffodil: its nearest classes are lemons and corn.
        (
            "tuxpaint-daffodil.jpg",
            (209, 209),
            "Gardening",
            5,
            Some("yellow"),
        ),
        // A bus is travel to a person and a vehicle to ImageNet: both fit.
        (
            "tuxpaint-green_korean_bus.jpg",
            (190, 68),
            "Travel",
            5,
            Some("green"),
        ),
    ];
    for (file, (x, y), theme, rank, color) in cases {
        let r = d.predict(&format!("x={x}&y={y}"), &photo(file));
        assert_eq!(r.status, 200, "{file}: {}", r.text());
        let answer = r.json();
        let themes = top_labels(&answer, "theme");
        assert!(
            themes[..rank].iter().any(|t| t == theme),
            "{file}: {theme} not in top {rank} of {themes:?}"
        );
        if let Some(color) = color {
            let colors = top_labels(&answer, "color");
            assert_eq!(colors[0], color, "{file}: colors {colors:?}");
        }
    }
}

#[test]
fn answer_has_the_documented_shape() {
    let d = Daemon::start("");
    let r = d.predict("x=120&y=80", &photo("skimage-rocket.jpg"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let a = r.json();
    assert_eq!(a["id"].as_str().unwrap().len(), 36, "id is a UUID");
    assert_eq!(a["image"], serde_json::json!({"width": 640, "height": 427}));
    for (model, labels) in [
        ("color", "labels/colors.txt"),
        ("theme", "labels/themes.txt"),
    ] {
        let preds = a["predictions"][model].as_array().unwrap();
        assert_eq!(preds.len(), 5, "{model}: 5 labels by default");
        let known = std::fs::read_to_string(root().join(labels)).unwrap();
        let probs: Vec<f64> = preds
            .iter()
            .map(|p| p["probability"].as_f64().unwrap())
            .collect();
        assert!(
            probs.windows(2).all(|w| w[0] >= w[1]),
            "{model}: sorted best first: {probs:?}"
        );
        assert!(probs.iter().sum::<f64>() <= 1.0001 && probs[0] > 0.0);
        for p in preds {
            assert!(
                known.lines().any(|l| l == p["label"].as_str().unwrap()),
                "{model}: unknown label {p}"
            );
        }
        let version = a["models"][model].as_str().unwrap();
        assert!(
            version.starts_with("sha256:") && version.len() == 7 + 64,
            "{version}"
        );
        assert!(a["timing_ms"][model].as_f64().unwrap() > 0.0);
    }
    for key in ["decode", "total"] {
        assert!(
            a["timing_ms"][key].as_f64().unwrap() >= 0.0,
            "timing_ms.{key}"
        );
    }
    // One model, more labels.
    let r = d.predict(
        "x=120&y=80&models=color&top=18",
        &photo("skimage-rocket.jpg"),
    );
    let a = r.json();
    assert_eq!(a["predictions"]["color"].as_array().unwrap().len(), 18);
    assert!(
        a["predictions"].get("theme").is_none(),
        "only the requested model runs"
    );
    let total: f64 = a["predictions"]["color"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["probability"].as_f64().unwrap())
        .sum();
    assert!(
        (total - 1.0).abs() < 1e-3,
        "all 18 colors sum to 1, got {total}"
    );
}

#[test]
fn models_health_and_readiness() {
    let d = Daemon::start("");
    assert_eq!(d.get("/healthz").status, 200);
    assert_eq!(d.get("/readyz").status, 200);
    let r = d.get("/v1/models");
    assert_eq!(r.status, 200);
    let models = r.json()["models"].as_array().unwrap().clone();
    let names: Vec<&str> = models.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["color", "theme"]);
    let theme = &models[1];
    assert_eq!(theme["labels"], 42);
    assert_eq!(theme["input_shape"], serde_json::json!([1, 224, 224, 3]));
    assert!(theme["graph"]
        .as_str()
        .unwrap()
        .ends_with("models/themeClassifier.pb"));
    assert!(theme["load_ms"].as_f64().unwrap() > 0.0);
    assert!(theme["loaded_at"].as_str().unwrap().starts_with("20"));
    let expected = {
        use sha2::Digest;
        format!(
            "sha256:{:x}",
            sha2::Sha256::digest(std::fs::read(root().join("models/themeClassifier.pb")).unwrap())
        )
    };
    assert_eq!(theme["version"], expected.as_str());
}

/// A JPEG of `w` x `h` whose EXIF says "rotate 90 degrees clockwise to display".
fn jpeg_with_orientation(w: u32, h: u32, orientation: u16) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, _| {
        if x < w / 2 {
            image::Rgb([250, 0, 0])
        } else {
            image::Rgb([0, 0, 250])
        }
    });
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    let mut tiff = b"II*\x00\x08\x00\x00\x00\x01\x00".to_vec(); // little endian, IFD at 8, one entry
    tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0]); // tag 0x0112 SHORT count 1
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // value padding, no next IFD
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend_from_slice(&tiff);
    let len = (app1.len() + 2) as u16;
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_is_applied_before_the_point_is_read() {
    let d = Daemon::start("");
    // Stored 60 wide, 20 high: left half red, right half blue. Orientation 6
    // displays it 20 wide and 60 high, red on top.
    let bytes = jpeg_with_orientation(60, 20, 6);
    let r = d.predict("x=10&y=5&models=color", &bytes);
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    assert_eq!(a["image"], serde_json::json!({"width": 20, "height": 60}));
    assert_eq!(
        top_labels(&a, "color")[0],
        "red",
        "top of the displayed image is red"
    );
    let r = d.predict("x=10&y=55&models=color", &bytes);
    assert_eq!(top_labels(&r.json(), "color")[0], "blue");
    // x=30 is inside the stored image but outside the displayed one.
    let r = d.predict("x=30&y=5", &bytes);
    r.assert_error(422, "point_out_of_bounds", "x=30");
}

#[test]
fn every_error_code_comes_from_a_real_request_and_the_daemon_survives() {
    let d = Daemon::start("");
    let coffee = photo("skimage-coffee.jpg");
    let png = {
        let mut v = Vec::new();
        image::RgbImage::new(40, 30)
            .write_to(&mut std::io::Cursor::new(&mut v), image::ImageFormat::Png)
            .unwrap();
        v
    };
    type Case<'a> = (&'a str, Box<dyn Fn() -> Response + 'a>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "empty body",
            Box::new(|| d.predict("x=1&y=1", b"")),
            422,
            "invalid_image",
        ),
        (
            "text body",
            Box::new(|| d.predict("x=1&y=1", b"this is not an image")),
            415,
            "unsupported_media_type",
        ),
        (
            "truncated JPEG",
            Box::new(|| d.predict("x=1&y=1", &coffee[..coffee.len() / 2])),
            422,
            "invalid_image",
        ),
        (
            "truncated PNG",
            Box::new(|| d.predict("x=1&y=1", &png[..png.len() - 20])),
            422,
            "invalid_image",
        ),
        (
            "point right of the image",
            Box::new(|| d.predict("x=600&y=10", &coffee)),
            422,
            "point_out_of_bounds",
        ),
        (
            "point below the image",
            Box::new(|| d.predict("x=10&y=400", &coffee)),
            422,
            "point_out_of_bounds",
        ),
        (
            "negative point",
            Box::new(|| d.predict("x=-1&y=10", &coffee)),
            422,
            "point_out_of_bounds",
        ),
        (
            "missing y",
            Box::new(|| d.predict("x=1", &coffee)),
            400,
            "bad_request",
        ),
        (
            "x not a number",
            Box::new(|| d.predict("x=left&y=1", &coffee)),
            400,
            "bad_request",
        ),
        (
            "top=0",
            Box::new(|| d.predict("x=1&y=1&top=0", &coffee)),
            400,
            "bad_request",
        ),
        (
            "unknown model",
            Box::new(|| d.predict("x=1&y=1&models=weather", &coffee)),
            404,
            "not_found",
        ),
        (
            "unknown route",
            Box::new(|| d.get("/v2/predict")),
            404,
            "not_found",
        ),
        (
            "wrong method",
            Box::new(|| d.get("/v1/predict")),
            405,
            "method_not_allowed",
        ),
        (
            "malformed JSON",
            Box::new(|| d.post("/v1/predict?x=1&y=1", "application/json", b"{\"path\":")),
            400,
            "bad_request",
        ),
    ];
    for (name, send, status, code) in cases {
        let r = send();
        r.assert_error(status, code, name);
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{name}: message"
        );
        d.assert_still_serves();
    }
    // Edges are inside: the last pixel of each side answers.
    for (x, y) in [(0, 0), (599, 0), (0, 399), (599, 399)] {
        let r = d.predict(&format!("x={x}&y={y}"), &coffee);
        assert_eq!(r.status, 200, "({x}, {y}): {}", r.text());
    }
}

#[test]
fn concurrent_requests_all_succeed() {
    let d = Daemon::start("");
    let photos = [
        "skimage-coffee.jpg",
        "skimage-chelsea.jpg",
        "tuxpaint-747.jpg",
        "sklearn-flower.jpg",
    ];
    let results: Vec<(u16, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let d = &d;
                s.spawn(move || {
                    let bytes = photo(photos[i % photos.len()]);
                    let r = d.predict("x=50&y=50", &bytes);
                    (
                        r.status,
                        r.json()["predictions"]["theme"][0]["label"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (status, theme)) in results.iter().enumerate() {
        assert_eq!(*status, 200, "request {i}");
        assert!(!theme.is_empty());
    }
    // The same photo gives the same answer whichever worker ran it.
    let first = &results[0].1;
    assert!(results.iter().step_by(4).all(|(_, t)| t == first));
}

#[test]
fn stale_socket_is_replaced_but_other_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "", None);
    let socket = dir.path().join("predictd.sock");
    // A socket file left by a dead process.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let d = Daemon::spawn(dir, config.clone());
    d.assert_still_serves();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "socket-mode applied");
    // A second daemon on the live socket refuses to start.
    let out = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d.assert_still_serves();
    // A regular file where the socket should be is never deleted.
    let dir2 = tempfile::tempdir().unwrap();
    let config2 = write_config(dir2.path(), "", None);
    std::fs::write(dir2.path().join("predictd.sock"), "precious").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config2)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a socket"));
    assert_eq!(
        std::fs::read_to_string(dir2.path().join("predictd.sock")).unwrap(),
        "precious"
    );
}

#[test]
fn a_full_queue_is_answered_at_once_with_503() {
    // One theme worker and room for one waiting job: a burst must overflow.
    let models = std::fs::read_to_string(root().join("packaging/predictd.toml")).unwrap();
    let models = &models[models.find("[[model]]").unwrap()..];
    let models = models
        .replace("/usr/share/predictd/", &format!("{}/", root().display()))
        .replace("workers = 2\nqueue = 16", "workers = 1\nqueue = 1");
    // No image cache: a burst of distinct uploads each decodes, as here;
    // with ten copies of one photo served from the cache, all ten reach the
    // queue in the same instant, before the worker has taken the first.
    let d = Daemon::start_with("image-cache-bytes = 0", Some(&models));
    let image = photo("skimage-rocket.jpg");
    let results: Vec<(u16, String, std::time::Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let (d, image) = (&d, &image);
                s.spawn(move || {
                    let t = std::time::Instant::now();
                    let r = d.predict("x=300&y=200", image);
                    let code = if r.status == 200 {
                        String::new()
                    } else {
                        r.code()
                    };
                    (r.status, code, t.elapsed())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let overloaded: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    // What was admitted is served. At least the one job that took the
    // queue's place; usually two (the worker had taken the first before
    // the rest arrived), but on a saturated machine all ten can arrive
    // before the worker wakes, and then only one place was ever free.
    assert!(ok >= 1, "the worker and the queue still serve: {results:?}");
    assert!(
        !overloaded.is_empty(),
        "10 at once must overflow a queue of 1: {results:?}"
    );
    assert!(
        overloaded.iter().all(|r| r.1 == "overloaded"),
        "{results:?}"
    );
    assert_eq!(
        ok + overloaded.len(),
        10,
        "nothing but 200 or 503: {results:?}"
    );
    // Refused at once, not after waiting for the queue: faster than the
    // slowest served request.
    let slowest_ok = results
        .iter()
        .filter(|r| r.0 == 200)
        .map(|r| r.2)
        .max()
        .unwrap();
    let slowest_refusal = overloaded.iter().map(|r| r.2).max().unwrap();
    assert!(
        slowest_refusal < slowest_ok,
        "refusals {slowest_refusal:?} vs served {slowest_ok:?}"
    );
    d.assert_still_serves();
}
