//! Defects a review of the daemon found, each reproduced the way a user
//! met it; every test here failed before its fix.

mod common;

use common::*;
use nix::sys::signal::Signal;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn serve_daemon(args: &[&str], cwd: &Path, stderr: &Path) -> std::process::ExitStatus {
    Command::new(BIN)
        .args(["serve", "--daemon"])
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::null())
        // A file, not a pipe: a daemon that keeps its stderr would hold a
        // pipe open and `output()` would wait for the daemon to exit.
        .stderr(std::fs::File::create(stderr).unwrap())
        .status()
        .unwrap()
}

fn stop_pidfile(pidfile: &Path) {
    if let Ok(text) = std::fs::read_to_string(pidfile) {
        let pid = nix::unistd::Pid::from_raw(text.trim().parse().unwrap());
        let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
        wait_until("the daemon to exit", 30, || {
            nix::sys::signal::kill(pid, None).is_err()
        });
    }
}

#[test]
fn daemon_exit_codes_are_the_foregrounds() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    // Socket in use: 75, as in the foreground.
    let running = Daemon::start("");
    let pidfile = dir.path().join("other.pid");
    let status = serve_daemon(
        &[
            "--config",
            running.config.to_str().unwrap(),
            "--pidfile",
            pidfile.to_str().unwrap(),
        ],
        dir.path(),
        &log,
    );
    assert_eq!(
        status.code(),
        Some(75),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    running.assert_still_serves();

    // A missing graph: 66. A corrupt one: 65.
    for (graph, code) in [
        (dir.path().join("missing.pb"), 66),
        (dir.path().join("corrupt.pb"), 65),
    ] {
        if graph.ends_with("corrupt.pb") {
            std::fs::write(&graph, b"\x0a\x03abc not a graph").unwrap();
        }
        let config = write_config(dir.path(), "", None);
        use_theme_graph(&config, &graph);
        let status = serve_daemon(&["--config", config.to_str().unwrap()], dir.path(), &log);
        let err = std::fs::read_to_string(&log).unwrap();
        assert_eq!(status.code(), Some(code), "{}: {err}", graph.display());
        assert!(
            err.contains(graph.file_name().unwrap().to_str().unwrap()),
            "{err}"
        );
        assert!(!dir.path().join("predictd.sock").exists());
    }
}

#[test]
fn sighup_after_daemonizing_without_config_reloads_the_default_models() {
    // The README's first command, daemonized: models/ and labels/ of the
    // folder it was started in, though the daemon runs in /.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("p.sock");
    let pidfile = dir.path().join("p.pid");
    let log = dir.path().join("stderr.log");
    let status = serve_daemon(
        &[
            "--socket",
            socket.to_str().unwrap(),
            "--pidfile",
            pidfile.to_str().unwrap(),
        ],
        &root(),
        &log,
    );
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid.trim().parse().unwrap()),
        Signal::SIGHUP,
    )
    .unwrap();
    let reloads = |outcome: &str| {
        let text = request(&socket, "GET", "/metrics", &[], b"").text();
        metric(
            &text,
            &format!("predictd_reloads_total{{outcome=\"{outcome}\"}}"),
        )
    };
    wait_until("the reload", 60, || {
        reloads("ok") + reloads("failed") >= 1.0
    });
    let ok = reloads("ok");
    stop_pidfile(&pidfile);
    assert_eq!(ok, 1.0, "the reload failed");
}

#[test]
fn the_start_up_load_never_overwrites_a_newer_reload() {
    // Start with a theme graph that is a FIFO (its load waits for the
    // test), change the config and send SIGHUP while the start-up load is
    // still waiting: the models in service at the end must be the new
    // config's.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("theme.pb");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let config = write_config(dir.path(), "", None);
    let newer = std::fs::read_to_string(&config).unwrap();
    use_theme_graph(&config, &fifo);
    let stderr_path = dir.path().join("stderr.log");
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let socket = dir.path().join("predictd.sock");
    wait_until("the socket", 30, || {
        try_request(&socket, "GET", "/healthz", &[], b"").is_ok()
    });
    std::fs::write(&config, newer).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGHUP,
    )
    .unwrap();
    // Before the fix the reload ran beside the start-up load and finished
    // first; now it waits its turn. Give it the time it took then.
    let log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && !log().contains("reload: ok") {
        std::thread::sleep(Duration::from_millis(25));
    }
    std::fs::write(
        &fifo,
        std::fs::read(root().join("models/themeClassifier.pb")).unwrap(),
    )
    .unwrap();
    wait_until("the reload after the start-up load", 60, || {
        log().contains("reload: ok")
    });
    let theme = model_info(&socket, "theme");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    );
    let _ = child.wait();
    let graph = theme["graph"].as_str().unwrap();
    assert!(
        graph.ends_with("models/themeClassifier.pb"),
        "still serving {graph}: {}",
        log()
    );
}

#[test]
fn clients_that_hang_up_leave_nothing_in_flight_and_are_logged() {
    let d = Daemon::start("image-cache-bytes = 0");
    let photo = camera_photo();
    let hung_up: Vec<_> = (0..6)
        .map(|i| {
            let mut s = UnixStream::connect(&d.socket).unwrap();
            let head = format!(
                "POST /v1/predict?x={}&y=1000 HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                100 + i * 300,
                photo.len()
            );
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(&photo).unwrap();
            s
        })
        .collect();
    // Every request is being worked on; then every client hangs up.
    wait_until("six requests in flight", 30, || {
        metric(&d.get("/metrics").text(), "predictd_requests_in_flight") >= 7.0
    });
    drop(hung_up);
    wait_until("nothing in flight but the scrape", 30, || {
        metric(&d.get("/metrics").text(), "predictd_requests_in_flight") == 1.0
    });
    wait_until("the log lines", 10, || {
        d.stderr().matches("status=499").count()
            + d.stderr().matches("route=/v1/predict status=200").count()
            >= 6
    });
    assert!(d.stderr().contains("status=499"), "{}", d.stderr());
    assert!(d.stderr().contains("client closed the connection"));
    d.assert_still_serves();
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_connect_flood_past_max_connections_holds_few_descriptors() {
    let d = Daemon::start("max-connections = 1");
    // The one connection allowed, held open mid-headers.
    let mut held = UnixStream::connect(&d.socket).unwrap();
    held.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    // Once it holds the only place, the next connection is refused.
    wait_until("the held connection", 10, || {
        try_request(&d.socket, "GET", "/healthz", &[], b"").is_ok_and(|r| r.status == 503)
    });
    let before = fd_count(d.child.id());
    let mut flood: Vec<_> = (0..200)
        .filter_map(|_| UnixStream::connect(&d.socket).ok())
        .collect();
    // Each refused connection is answered and closed, or closed at once:
    // once 150 of them have ended, the daemon has refused at least those.
    for s in flood.iter_mut().take(150) {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
    }
    let during = fd_count(d.child.id());
    drop(flood);
    drop(held);
    assert!(
        during <= before + 40,
        "{} descriptors held for refused connections",
        during - before
    );
    d.wait_ready();
    // Every refusal is counted, but the log holds a line a second at most,
    // each saying how many it stands for.
    let metrics = d.get("/metrics").text();
    let counted: f64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("predictd_connections_refused_total{limit=\"max-connections\"} ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no refusal count in\n{metrics}"));
    assert!(counted >= 200.0, "{counted} refusals counted");
    wait_until("a refusal's log line", 10, || {
        d.stderr()
            .contains("refused: server.max-connections reached")
    });
    let log = d.stderr();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("refused: server.max-connections reached"))
        .collect();
    assert!(
        !lines.is_empty() && lines.len() <= 10,
        "{} log lines for {counted} refusals",
        lines.len()
    );
}

#[test]
fn http_beyond_loopback_without_a_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "", None);
    let port = free_port();
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--http", &format!("0.0.0.0:{port}")])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("http-token") && err.contains("http-allow-unauthenticated"),
        "{err}"
    );
    // Said explicitly, it starts; and on loopback it needs no token.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http-allow-unauthenticated = true", None);
    let addr = format!("0.0.0.0:{port}");
    let d = Daemon::spawn_args(dir, config, &["--http", &addr]);
    let r = tcp_request(&format!("127.0.0.1:{port}"), "GET", "/healthz", &[], b"");
    assert_eq!(r.status, 200);
    drop(d);
}

#[test]
fn every_answer_forbids_outside_sources_and_sniffing() {
    let d = Daemon::start("");
    for r in [
        d.get("/"),
        d.get("/healthz"),
        d.get("/nope"),
        d.predict("x=1&y=1", b"not an image"),
        d.predict("x=100&y=100", &photo("skimage-coffee.jpg")),
    ] {
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{}",
            r.status
        );
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("http"),
            "{csp}"
        );
    }
}

#[test]
fn a_repeated_parameter_is_refused() {
    let d = Daemon::start("");
    let jpeg = photo("skimage-coffee.jpg");
    d.predict("x=5&x=6&y=1", &jpeg)
        .assert_error(400, "bad_request", "more than once");
    d.predict("x=5&y=1&top=2&top=3", &jpeg)
        .assert_error(400, "bad_request", "more than once");
    // One parser for every way in: a bad number is reported the same way.
    d.predict("x=abc&y=1", &jpeg)
        .assert_error(400, "bad_request", "not a number");
    d.assert_still_serves();
}

#[test]
fn bench_reports_throughput_and_percentiles_and_counts_a_stall() {
    let d = Daemon::start("");
    let image = root().join("tests/fixtures/photos/skimage-coffee.jpg");
    let out = Command::new(BIN)
        .args(["bench", "--socket", d.socket.to_str().unwrap()])
        .args(["--concurrency", "2", "--requests", "20"])
        .arg(&image)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("requests:   20 in") && text.contains("(0 errors)"),
        "{text}"
    );
    for line in ["throughput:", "p50:", "p95:", "p99:"] {
        assert!(text.contains(line), "{text}");
    }
    // On a schedule (--rate), a daemon frozen for 1 s delays the requests
    // due meanwhile: their latency counts from when they were due, so p99
    // shows the stall even though each answer, once sent, is fast.
    let pid = nix::unistd::Pid::from_raw(d.child.id() as i32);
    let bench = Command::new(BIN)
        .args(["bench", "--socket", d.socket.to_str().unwrap()])
        .args(["--concurrency", "1", "--rate", "20", "--duration", "3"])
        .arg(&image)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    nix::sys::signal::kill(pid, Signal::SIGSTOP).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    nix::sys::signal::kill(pid, Signal::SIGCONT).unwrap();
    let out = bench.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let p99: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("p99:"))
        .and_then(|v| v.trim().trim_end_matches("ms").trim().parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(p99 >= 700.0, "a 1 s stall hidden by the schedule: {text}");
}

#[test]
fn the_shutdown_cut_off_ends_requests_still_running() {
    // A request that cannot finish (its body never comes) and a short
    // shutdown-timeout: SIGTERM must end the daemon within the cut-off.
    let d = Daemon::start("shutdown-timeout-ms = 500\nrequest-timeout-ms = 60000");
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(
        b"POST /v1/predict?x=1&y=1 HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\npartial",
    )
    .unwrap();
    wait_until("the request to be in flight", 10, || {
        metric(&d.get("/metrics").text(), "predictd_requests_in_flight") >= 2.0
    });
    let mut d = d;
    let t = Instant::now();
    d.signal(Signal::SIGTERM);
    let status = d.child.wait().unwrap();
    let took = t.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    assert!(
        took >= Duration::from_millis(450),
        "did not wait for the request: {took:?}"
    );
    assert!(d.stderr().contains("were cut off"), "{}", d.stderr());
    assert!(!d.socket.exists());
}

#[test]
fn a_daemon_without_syslog_logs_to_stderr_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-syslog.sock");
    let config = write_config(
        dir.path(),
        &format!("syslog-socket = {:?}", missing.display().to_string()),
        None,
    );
    let log = dir.path().join("stderr.log");
    let status = serve_daemon(&["--config", config.to_str().unwrap()], dir.path(), &log);
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let socket = dir.path().join("predictd.sock");
    let r = request(&socket, "GET", "/readyz", &[], b"");
    assert_eq!(r.status, 200);
    let text = || std::fs::read_to_string(&log).unwrap();
    wait_until("the request's log line", 10, || {
        text().contains("route=/readyz status=200")
    });
    stop_pidfile(&dir.path().join("predictd.pid"));
    assert!(text().contains("cannot log to syslog"), "{}", text());
}
