//! The daemon's lifecycle, run for real: fork and readiness, the pidfile
//! lock, reload under load, graceful stop, syslog.

mod common;
use common::*;
use nix::sys::signal::Signal;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn pid_in(pidfile: &Path) -> i32 {
    std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Starts `serve --daemon` on `config` and returns the daemon's pid once
/// the parent has exited ready.
fn start_daemon(config: &Path, pidfile: &Path) -> i32 {
    let out = Command::new(BIN)
        .args(["serve", "--daemon", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pid_in(pidfile)
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

fn wait_gone(pid: i32) {
    wait_until(&format!("pid {pid} to exit"), 30, || !alive(pid));
}

/// A config whose syslog socket is a datagram socket the test reads.
fn daemon_config(dir: &Path) -> (std::path::PathBuf, UnixDatagram) {
    let log = dir.join("log.sock");
    let syslog = UnixDatagram::bind(&log).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let config = write_config(
        dir,
        &format!("syslog-socket = {:?}", log.display().to_string()),
        None,
    );
    (config, syslog)
}

fn syslog_lines(sock: &UnixDatagram) -> Vec<String> {
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 65536];
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    while let Ok(n) = sock.recv(&mut buf) {
        lines.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    lines
}

#[test]
fn daemon_parent_exits_when_ready_and_logs_to_syslog() {
    let dir = tempfile::tempdir().unwrap();
    let (config, syslog) = daemon_config(dir.path());
    let out = Command::new(BIN)
        .args(["serve", "--daemon", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Ready means ready: no waiting after the parent has exited.
    let socket = dir.path().join("predictd.sock");
    let r = request(
        &socket,
        "POST",
        "/v1/predict?x=300&y=200",
        &[],
        &photo("skimage-coffee.jpg"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let pidfile = dir.path().join("predictd.pid");
    let pid = pid_in(&pidfile);
    assert!(alive(pid));
    // The daemon is detached: a new session (led by daemonize's first child,
    // so the daemon itself can never take a terminal again).
    let sid = nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(pid))).unwrap();
    assert_ne!(sid, nix::unistd::getsid(None).unwrap());
    assert_ne!(sid.as_raw(), pid);

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    wait_gone(pid);
    assert!(!socket.exists(), "socket removed on stop");
    assert!(!pidfile.exists(), "pidfile removed on stop");

    let lines = syslog_lines(&syslog);
    let all = lines.join("\n");
    // Facility daemon (3), level info (6): priority 30.
    assert!(lines.iter().all(|l| l.starts_with('<')), "{all}");
    assert!(
        all.contains("<30>") && all.contains(&format!("predictd[{pid}]")),
        "{all}"
    );
    for needle in [
        "start:",
        "model load: model=theme",
        "hash=sha256:",
        "ready:",
        "request:",
        "route=/v1/predict status=200",
        "inference: model=color",
        "stop:",
    ] {
        assert!(all.contains(needle), "syslog lacks {needle:?}:\n{all}");
    }
}

#[test]
fn daemon_parent_reports_a_broken_model_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _syslog) = daemon_config(dir.path());
    let broken = dir.path().join("broken.pb");
    std::fs::write(&broken, b"\x0a\x03abc not a graph").unwrap();
    use_theme_graph(&config, &broken);
    let started = Instant::now();
    let out = Command::new(BIN)
        .args(["serve", "--daemon", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a broken model must fail the start");
    assert!(
        err.contains("broken.pb") && err.contains("theme"),
        "the child's reason reaches the parent: {err}"
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        !dir.path().join("predictd.sock").exists(),
        "no socket left behind"
    );
}

#[test]
fn second_instance_on_a_locked_pidfile_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _syslog) = daemon_config(dir.path());
    let pid = start_daemon(&config, &dir.path().join("predictd.pid"));
    // Same pidfile, another socket.
    let out = Command::new(BIN)
        .args(["serve", "--daemon", "--config"])
        .arg(&config)
        .arg("--socket")
        .arg(dir.path().join("other.sock"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "EX_TEMPFAIL: {err}");
    assert!(err.contains("pidfile"), "{err}");
    assert!(alive(pid), "the first daemon is untouched");
    assert_eq!(
        pid_in(&dir.path().join("predictd.pid")),
        pid,
        "pidfile still names the first daemon"
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    wait_gone(pid);
}

/// Runs `clients` threads sending predictions until `stop`; counts failures.
fn steady_load<'a>(
    s: &'a std::thread::Scope<'a, '_>,
    socket: &'a Path,
    stop: &'a AtomicBool,
    ok: &'a AtomicUsize,
    failed: &'a std::sync::Mutex<Vec<String>>,
) {
    let image = photo("skimage-chelsea.jpg");
    for _ in 0..3 {
        let image = image.clone();
        s.spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match try_request(socket, "POST", "/v1/predict?x=200&y=150", &[], &image) {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => failed
                        .lock()
                        .unwrap()
                        .push(format!("{} {}", r.status, r.text())),
                    Err(e) => failed.lock().unwrap().push(e.to_string()),
                }
            }
        });
    }
}

fn theme_version(d: &Daemon) -> (String, String) {
    let theme = model_info(&d.socket, "theme");
    (
        theme["version"].as_str().unwrap().to_string(),
        theme["loaded_at"].as_str().unwrap().to_string(),
    )
}

#[test]
fn reload_under_load_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("theme.pb");
    let original = std::fs::read(root().join("models/themeClassifier.pb")).unwrap();
    std::fs::write(&graph, &original).unwrap();
    let config = write_config(dir.path(), "", None);
    use_theme_graph(&config, &graph);
    let d = Daemon::spawn(dir, config);
    let (v0, t0) = theme_version(&d);

    let stop = AtomicBool::new(false);
    let ok = AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        steady_load(s, &d.socket, &stop, &ok, &failed);
        wait_until("traffic", 60, || ok.load(Ordering::SeqCst) >= 5);

        // 1. A good new graph: the same network with an unknown protobuf
        // field appended (ignored by parsers), so its hash differs.
        let mut changed = original.clone();
        changed.extend_from_slice(&[0xC0, 0x3E, 0x01]); // field 1000, varint 1
        std::fs::write(&graph, &changed).unwrap();
        d.signal(Signal::SIGHUP);
        wait_until("the new version", 60, || theme_version(&d).0 != v0);
        let (v1, t1) = theme_version(&d);
        assert_ne!(t1, t0, "load time changes with a reload");
        let before = ok.load(Ordering::SeqCst);
        wait_until("traffic on the new models", 60, || {
            ok.load(Ordering::SeqCst) >= before + 5
        });

        // 2. A broken graph: the old models keep serving.
        std::fs::write(&graph, b"\x0a\x03abc broken").unwrap();
        d.signal(Signal::SIGHUP);
        wait_until("the failed reload in the log", 60, || {
            d.stderr().contains("reload: failed")
        });
        assert_eq!(
            theme_version(&d).0,
            v1,
            "a broken graph leaves the old model serving"
        );

        // 3. POST /v1/reload from an admin uid (the tests run as root) with
        // the graph fixed again.
        std::fs::write(&graph, &original).unwrap();
        let r = d.post("/v1/reload", "application/json", b"");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["models"]["theme"], v0.as_str());
        // The duration in milliseconds, with at most two decimals.
        let ms = r.text();
        let ms = ms
            .split("\"ms\":")
            .nth(1)
            .unwrap()
            .split(['}', ','])
            .next()
            .unwrap();
        assert!(
            ms.split('.').nth(1).is_none_or(|d| d.len() <= 2),
            "reload ms {ms}"
        );
        let before = ok.load(Ordering::SeqCst);
        wait_until("traffic after the reload", 60, || {
            ok.load(Ordering::SeqCst) >= before + 5
        });
        stop.store(true, Ordering::SeqCst);
    });
    let failed = failed.into_inner().unwrap();
    assert!(
        failed.is_empty(),
        "{} requests failed during reloads: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok.load(Ordering::SeqCst) >= 15);
    wait_until("a reload's log line", 10, || {
        d.stderr().contains("reload: ok")
    });
}

#[test]
fn sigterm_lets_requests_in_flight_finish() {
    let d = Daemon::start("");
    let image = photo("skimage-rocket.jpg");
    let sent = AtomicUsize::new(0);
    let results: Vec<(u16, Instant)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (image, socket, sent) = (&image, &d.socket, &sent);
                s.spawn(move || {
                    sent.fetch_add(1, Ordering::SeqCst);
                    let r = request(socket, "POST", "/v1/predict?x=300&y=200", &[], image);
                    (r.status, Instant::now())
                })
            })
            .collect();
        wait_until("requests sent", 60, || sent.load(Ordering::SeqCst) == 6);
        // Requests being served (the scrape itself is one of them).
        wait_until("requests in flight", 60, || {
            metric(&d.get("/metrics").text(), "predictd_requests_in_flight") >= 2.0
        });
        let signalled = Instant::now();
        d.signal(Signal::SIGTERM);
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(
            results.iter().any(|(_, t)| *t > signalled),
            "some requests were still running at SIGTERM"
        );
        results
    });
    assert!(
        results.iter().all(|(status, _)| *status == 200),
        "{results:?}"
    );
    let mut d = d;
    let status = d.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    assert!(!d.socket.exists(), "socket removed");
    assert!(d.stderr().contains("stop: done"));
}

/// A syslog daemon that stops reading must not stall the service: its
/// socket's queue fills (ten datagrams by default), after which a blocking
/// logger would hold every request at its first log line. Lines that
/// cannot be queued are dropped and counted instead.
#[test]
fn a_syslog_that_stops_reading_costs_dropped_lines_not_requests() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.sock");
    // Bound and never read.
    let _stalled = UnixDatagram::bind(&log).unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "syslog-socket = {:?}\nrate-per-uid = 0",
            log.display().to_string()
        ),
        None,
    );
    let pid = start_daemon(&config, &dir.path().join("predictd.pid"));
    let socket = dir.path().join("predictd.sock");
    // Each request logs a line: twice the log queue's lines, so that it
    // is full well before the end.
    let requests = 2 * predictd::daemon::logging::QUEUE_LINES;
    let mut slowest = Duration::ZERO;
    for _ in 0..requests {
        let started = Instant::now();
        let r = request(&socket, "GET", "/healthz", &[], &[]);
        assert_eq!(r.status, 200);
        slowest = slowest.max(started.elapsed());
    }
    // Generous for a busy machine; a blocking logger never answers at all.
    assert!(
        slowest < Duration::from_secs(5),
        "slowest /healthz {slowest:?}"
    );
    let r = request(
        &socket,
        "POST",
        "/v1/predict?x=300&y=200",
        &[],
        &photo("skimage-coffee.jpg"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let metrics = request(&socket, "GET", "/metrics", &[], &[]).text();
    let dropped: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("predictd_log_lines_dropped_total "))
        .unwrap_or_else(|| panic!("no dropped-lines counter:\n{metrics}"))
        .parse()
        .unwrap();
    assert!(
        dropped > 0.0,
        "{requests} lines into a stalled syslog, none dropped?"
    );
    // Stopping does not hang on the stalled log either.
    let started = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    wait_gone(pid);
    assert!(started.elapsed() < Duration::from_secs(20));
}
