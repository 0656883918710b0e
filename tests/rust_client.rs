//! The Rust client (`predictd::client`) as an application uses it: against
//! the real daemon, and against servers that misbehave. Every call must
//! come back within its timeout plus 50 ms, with the reason as a value.

mod common;

use common::{photo, Daemon, BIN};
use predictd::client::{blocking, Client, Options};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_millis(300);
const SLACK: Duration = Duration::from_millis(50);

/// How a fake server answers each request.
#[derive(Clone, Copy)]
enum Fake {
    /// Accepts, reads, never answers.
    Silent,
    /// Answers this status with the daemon's JSON error `code`.
    Error(u16, &'static str),
    /// Sends the head and half of the body, then closes.
    CutShort,
}

/// A fake server on a socket in a temp folder; counts requests.
struct FakeServer {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    requests: Arc<AtomicUsize>,
}

fn fake(kind: Fake) -> FakeServer {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("fake.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let count = count.clone();
            std::thread::spawn(move || {
                let _ = read_request(&mut s);
                count.fetch_add(1, Ordering::SeqCst);
                answer(&mut s, kind);
            });
        }
    });
    FakeServer {
        _dir: dir,
        socket,
        requests,
    }
}

/// Reads one request's head and its Content-Length body.
fn read_request(s: &mut UnixStream) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = s.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(());
        }
    }
}

fn answer(s: &mut UnixStream, kind: Fake) {
    match kind {
        Fake::Silent => std::thread::sleep(Duration::from_secs(30)),
        Fake::Error(status, code) => {
            let body = format!(r#"{{"error":{{"code":"{code}","message":"fake {code}"}}}}"#);
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nRetry-After: 1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
        Fake::CutShort => {
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{\"id\": \"0192",
            );
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// One predict call on `socket`: its answer and how long it took.
fn timed_predict(
    client: &Client,
    rt: &tokio::runtime::Runtime,
) -> (predictd::client::Prediction, Duration) {
    let t = Instant::now();
    let p = rt.block_on(client.predict(
        photo("skimage-coffee.jpg"),
        100.0,
        100.0,
        &Options::default(),
    ));
    (p, t.elapsed())
}

fn assert_failure(socket: &Path, expected: &str) -> Duration {
    let rt = runtime();
    let client = Client::new(socket).timeout(TIMEOUT);
    let (p, took) = timed_predict(&client, &rt);
    assert!(!p.ok);
    assert!(p.predictions.is_empty() && p.id.is_none());
    assert_eq!(p.error.as_deref(), Some(expected), "{p:?}");
    assert!(took <= TIMEOUT + SLACK, "{expected} took {took:?}");
    took
}

#[test]
fn a_missing_socket_is_unavailable_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let took = assert_failure(&dir.path().join("none.sock"), "unavailable");
    assert!(took < TIMEOUT, "{took:?}");
}

#[test]
fn a_server_that_never_answers_is_a_timeout_at_the_deadline() {
    let f = fake(Fake::Silent);
    let took = assert_failure(&f.socket, "timeout");
    assert!(took >= TIMEOUT, "gave up before the deadline: {took:?}");
}

#[test]
fn overloaded_is_passed_through_and_not_retried_inside_the_call() {
    let f = fake(Fake::Error(503, "overloaded"));
    let took = assert_failure(&f.socket, "overloaded");
    assert!(took < TIMEOUT, "{took:?}");
    assert_eq!(f.requests.load(Ordering::SeqCst), 1);
    let f = fake(Fake::Error(503, "not_ready"));
    assert_failure(&f.socket, "not_ready");
}

#[test]
fn rate_limited_is_passed_through() {
    let f = fake(Fake::Error(429, "rate_limited"));
    assert_failure(&f.socket, "rate_limited");
}

#[test]
fn an_answer_cut_short_is_unavailable() {
    let f = fake(Fake::CutShort);
    assert_failure(&f.socket, "unavailable");
}

#[test]
fn the_circuit_opens_after_failures_in_a_row_and_closes_after_the_cooldown() {
    let f = fake(Fake::Silent);
    let rt = runtime();
    let client = Client::new(&f.socket)
        .timeout(Duration::from_millis(100))
        .circuit_breaker(3, Duration::from_millis(500));
    for _ in 0..3 {
        assert_eq!(
            timed_predict(&client, &rt).0.error.as_deref(),
            Some("timeout")
        );
    }
    let (p, took) = timed_predict(&client, &rt);
    assert_eq!(p.error.as_deref(), Some("circuit_open"));
    assert!(
        took < Duration::from_millis(20),
        "an open circuit waited {took:?}"
    );
    assert_eq!(f.requests.load(Ordering::SeqCst), 3);
    // Feedback is not sent either while the circuit is open.
    assert!(!rt.block_on(client.feedback("id", "color", "red")));
    std::thread::sleep(Duration::from_millis(550));
    assert_eq!(
        timed_predict(&client, &rt).0.error.as_deref(),
        Some("timeout")
    );
    assert_eq!(f.requests.load(Ordering::SeqCst), 4);
}

#[test]
fn refused_input_is_not_a_failure_of_the_daemon() {
    // An answer, even a refusal, closes the circuit: the daemon is there.
    let f = fake(Fake::Error(422, "invalid_image"));
    let rt = runtime();
    let client = Client::new(&f.socket)
        .timeout(TIMEOUT)
        .circuit_breaker(1, Duration::from_secs(60));
    for _ in 0..3 {
        assert_eq!(
            timed_predict(&client, &rt).0.error.as_deref(),
            Some("invalid_image")
        );
    }
}

#[test]
fn the_real_daemon_answers_async_and_blocking() {
    let d = Daemon::start("");
    let rt = runtime();
    let client = Client::new(&d.socket).timeout(Duration::from_secs(10));
    let p = rt.block_on(client.predict(
        photo("tuxpaint-strawberry2.jpg"),
        149.0,
        333.0,
        &Options::default(),
    ));
    assert!(p.ok, "{p:?}");
    assert_eq!(p.error, None);
    assert_eq!(p.suggestions("color")[0].label, "red");
    assert_eq!(p.suggestions("theme")[0].label, "Food & Cooking");
    assert_eq!(p.suggestions("theme").len(), 5);
    let id = p.id.clone().unwrap();
    assert!(rt.block_on(client.feedback(&id, "theme", "Food & Cooking")));
    assert!(!rt.block_on(client.feedback("no-such-id", "theme", "Food & Cooking")));

    // One model, fewer labels, a model name that needs encoding.
    let only = Options {
        models: Some(vec!["color".into()]),
        top: 2,
    };
    let p = rt.block_on(client.predict(photo("skimage-coffee.jpg"), 10.0, 10.0, &only));
    assert!(p.ok);
    assert_eq!(p.predictions.keys().collect::<Vec<_>>(), ["color"]);
    assert_eq!(p.suggestions("color").len(), 2);
    let odd = Options {
        models: Some(vec!["a b&c".into()]),
        top: 5,
    };
    let p = rt.block_on(client.predict(photo("skimage-coffee.jpg"), 10.0, 10.0, &odd));
    assert_eq!(
        (p.status, p.error.as_deref()),
        (Some(404), Some("not_found"))
    );

    // Refused input: the daemon's code.
    let p = rt.block_on(client.predict(Vec::new(), 1.0, 1.0, &Options::default()));
    assert_eq!(p.error.as_deref(), Some("invalid_image"));
    let p = rt.block_on(client.predict(photo("skimage-coffee.jpg"), 1e6, 1.0, &Options::default()));
    assert_eq!(p.error.as_deref(), Some("point_out_of_bounds"));
    // A path is read by the client.
    let path = common::root().join("tests/fixtures/photos/skimage-coffee.jpg");
    let p = rt.block_on(client.predict(path.as_path(), 10.0, 10.0, &Options::default()));
    assert!(p.ok, "{p:?}");
    let p = rt.block_on(client.predict(
        Path::new("/nonexistent.jpg"),
        10.0,
        10.0,
        &Options::default(),
    ));
    assert_eq!(p.error.as_deref(), Some("not_found"));

    // The blocking client, from a thread without a runtime.
    let socket = d.socket.clone();
    std::thread::spawn(move || {
        let client = blocking::Client::new(&socket).timeout(Duration::from_secs(10));
        let p = client.predict(
            photo("skimage-coffee.jpg"),
            100.0,
            100.0,
            &Options::default(),
        );
        assert!(p.ok, "{p:?}");
        assert!(client.feedback(p.id.as_deref().unwrap(), "color", "brown"));
    })
    .join()
    .unwrap();
}

#[test]
fn health_exits_0_when_the_daemon_answers_and_69_when_not() {
    let d = Daemon::start("");
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("health")
            .args(args)
            .output()
            .unwrap()
    };
    let socket = d.socket.to_str().unwrap();
    assert_eq!(run(&["--socket", socket]).status.code(), Some(0));
    assert_eq!(run(&["--socket", socket, "--ready"]).status.code(), Some(0));
    let missing = d.dir.path().join("none.sock");
    let out = run(&["--socket", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Cannot reach"));
    // A daemon that does not answer in time is not healthy.
    let f = fake(Fake::Silent);
    let t = Instant::now();
    let out = run(&[
        "--socket",
        f.socket.to_str().unwrap(),
        "--timeout-ms",
        "300",
    ]);
    assert_eq!(out.status.code(), Some(69));
    assert!(t.elapsed() < Duration::from_secs(3));
    // Not ready is 69 for --ready.
    let f = fake(Fake::Error(503, "not_ready"));
    let out = run(&["--socket", f.socket.to_str().unwrap(), "--ready"]);
    assert_eq!(out.status.code(), Some(69));
}

#[test]
fn predict_through_a_socket_encodes_model_names_and_never_panics() {
    let d = Daemon::start("");
    let out = std::process::Command::new(BIN)
        .args(["predict", "--socket", d.socket.to_str().unwrap()])
        .args(["--x", "10", "--y", "10", "--models", "a b"])
        .arg(common::root().join("tests/fixtures/photos/skimage-coffee.jpg"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(65), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unknown model \"a b\""));
    let out = std::process::Command::new(BIN)
        .args(["predict", "--socket", d.socket.to_str().unwrap()])
        .args(["--x", "10", "--y", "10", "--models", "color", "--json"])
        .arg(common::root().join("tests/fixtures/photos/skimage-coffee.jpg"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(answer["predictions"]["color"].is_array());
    assert!(answer["predictions"].get("theme").is_none());
}
