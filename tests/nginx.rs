//! Scale-out behind Debian's nginx, with the shipped deploy/nginx/predictd.conf:
//! two daemons behind it, one killed in the middle of steady load and
//! started again. No client request may fail, and both instances must
//! serve again after the restart. tests/run installs nginx; a missing
//! nginx is a failure here, never a skip.

mod common;

use common::{metric, photo, try_tcp_request, Daemon};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn nginx_binary() -> PathBuf {
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!(
        "nginx is not installed: tests/run installs it (apt-get install nginx) when run as root"
    );
}

/// nginx in the foreground with its own prefix folder, running the shipped
/// config with these sockets and this port.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    addr: String,
}

impl Nginx {
    fn start(sockets: [&Path; 2]) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let shipped =
            std::fs::read_to_string(common::root().join("deploy/nginx/predictd.conf")).unwrap();
        let site = shipped
            .replace(
                "/run/predictd-1/predictd.sock",
                sockets[0].to_str().unwrap(),
            )
            .replace(
                "/run/predictd-2/predictd.sock",
                sockets[1].to_str().unwrap(),
            )
            .replace(
                "listen 127.0.0.1:8080;",
                &format!("listen 127.0.0.1:{port};"),
            );
        assert_ne!(site, shipped);
        std::fs::write(dir.path().join("predictd.conf"), site).unwrap();
        let d = dir.path().display();
        // As root, workers would otherwise run as nobody, who cannot open
        // the test's sockets; a packaged nginx runs as www-data, put in the
        // sockets' group (docs/scale-out.md).
        let user = if nix::unistd::getuid().is_root() {
            "user root root;"
        } else {
            ""
        };
        let main = format!(
            "{user}
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
    log_format upstreams '$status $request_time $upstream_addr $upstream_status';
    access_log {d}/access.log upstreams;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type application/json;
    include {d}/predictd.conf;
}}
"
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, main).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // A group of its own: master and workers are stopped together.
            .process_group(0)
            .spawn()
            .unwrap();
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen: {}", {
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            });
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, dir, addr }
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Nginx {
    /// Stops master and workers: SIGTERM (nginx's fast shutdown, the
    /// master stops its workers), then SIGKILL to whatever of the group is
    /// left. Killing the master alone left its workers running, listening,
    /// with parent PID 1.
    fn stop(&mut self) {
        use nix::sys::signal::{kill, killpg, Signal};
        use nix::unistd::Pid;
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = kill(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while killpg(group, None).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether any process of nginx's group is still alive.
    fn any_left(&self) -> bool {
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.child.id() as i32), None).is_ok()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

fn served_predictions(d: &Daemon) -> f64 {
    metric(
        &d.get("/metrics").text(),
        r#"predictd_requests_total{route="/v1/predict",status="200"}"#,
    )
}

#[test]
fn no_request_fails_when_an_instance_is_killed_and_restarted_under_load() {
    let uid = nix::unistd::getuid().as_raw();
    let extra = format!("trusted-proxy-uids = [{uid}]");
    let mut first = Daemon::start(&extra);
    let second = Daemon::start(&extra);
    let nginx = Nginx::start([&first.socket, &second.socket]);

    let stop = Arc::new(AtomicBool::new(false));
    // (ms since start, status or the error) of every client request.
    let results = Arc::new(Mutex::new(Vec::<(u128, String)>::new()));
    let started = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|n| {
            let (stop, results, addr) = (stop.clone(), results.clone(), nginx.addr.clone());
            std::thread::spawn(move || {
                let jpeg = photo(if n % 2 == 0 {
                    "skimage-coffee.jpg"
                } else {
                    "tuxpaint-strawberry2.jpg"
                });
                while !stop.load(Ordering::SeqCst) {
                    let outcome = match try_tcp_request(
                        &addr,
                        "POST",
                        "/v1/predict?x=100&y=100",
                        &[("Content-Type", "image/jpeg")],
                        &jpeg,
                    ) {
                        Ok(r) if r.status == 200 => "200".to_string(),
                        Ok(r) => format!("{} {}", r.status, r.text()),
                        Err(e) => format!("client error: {e}"),
                    };
                    results
                        .lock()
                        .unwrap()
                        .push((started.elapsed().as_millis(), outcome));
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(1500));
    let before_kill = (served_predictions(&first), served_predictions(&second));
    // Killed without warning: requests in flight on it are cut.
    first.signal(nix::sys::signal::Signal::SIGKILL);
    let killed_at = started.elapsed().as_millis();
    std::thread::sleep(Duration::from_millis(2000));
    first.restart();
    let restarted_at = started.elapsed().as_millis();
    // Past nginx's fail_timeout (2 s), the restarted instance gets traffic.
    std::thread::sleep(Duration::from_millis(3500));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let after_restart = (served_predictions(&first), served_predictions(&second));

    let results = results.lock().unwrap();
    let failed: Vec<_> = results.iter().filter(|(_, o)| o != "200").collect();
    let log = nginx.access_log();
    let retried = log.lines().filter(|l| l.contains(", unix:")).count();
    println!(
        "{} requests through nginx: {} failed; killed at {killed_at} ms, restarted at {restarted_at} ms; \
         {retried} retried on the other instance; served before the kill {before_kill:?}, \
         by the restarted and the surviving instance after {after_restart:?}",
        results.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(
        before_kill.0 > 0.0 && before_kill.1 > 0.0,
        "both served before: {before_kill:?}"
    );
    assert!(
        results
            .iter()
            .filter(|(t, _)| *t > killed_at && *t < restarted_at)
            .count()
            > 10,
        "load went on while an instance was down"
    );
    assert!(
        after_restart.0 > 0.0,
        "the restarted instance serves again: {after_restart:?}"
    );
    assert!(after_restart.1 > before_kill.1);
    // Stopping nginx leaves none of its processes (workers included).
    let mut nginx = nginx;
    nginx.stop();
    assert!(!nginx.any_left(), "an nginx process outlived the test");
}

#[test]
fn the_rate_limit_counts_the_client_nginx_names_not_what_the_client_claims() {
    let uid = nix::unistd::getuid().as_raw();
    // One request per second, no burst: a second request in the same
    // second from the same client is a 429.
    let extra = format!("trusted-proxy-uids = [{uid}]\nrate-per-uid = 1\nrate-burst = 1");
    let d = Daemon::start(&extra);
    let jpeg = photo("skimage-coffee.jpg");
    // A prediction straight on a daemon's socket, naming a client.
    let ask_as = |d: &Daemon, xff: &str| {
        common::request(
            &d.socket,
            "POST",
            "/v1/predict?x=10&y=10",
            &[("Content-Type", "image/jpeg"), ("X-Forwarded-For", xff)],
            &jpeg,
        )
        .status
    };
    let ask = |xff: &str| ask_as(&d, xff);
    // A trusted proxy's clients each have their own bucket.
    assert_eq!(ask("10.0.0.1"), 200);
    assert_eq!(ask("10.0.0.2"), 200);
    // The last address is the one the proxy added; what the client put
    // before it is not trusted.
    assert_eq!(ask("10.0.0.9, 10.0.0.2"), 429);

    // Through nginx, a client cannot pick its identity: nginx replaces the header.
    let other = Daemon::start(&extra);
    let nginx = Nginx::start([&d.socket, &other.socket]);
    let statuses: Vec<u16> = (0..4)
        .map(|i| {
            let spoof = format!("192.0.2.{i}");
            try_tcp_request(
                &nginx.addr,
                "POST",
                "/v1/predict?x=10&y=10",
                &[("Content-Type", "image/jpeg"), ("X-Forwarded-For", &spoof)],
                &jpeg,
            )
            .unwrap()
            .status
        })
        .collect();
    assert!(
        statuses.contains(&429),
        "spoofed addresses escaped the limit: {statuses:?}"
    );

    // Without trust, the header is ignored: everyone shares the uid's bucket.
    let untrusted = Daemon::start("rate-per-uid = 1\nrate-burst = 1");
    assert_eq!(ask_as(&untrusted, "10.0.0.1"), 200);
    assert_eq!(ask_as(&untrusted, "10.0.0.2"), 429);
}

#[test]
fn reload_is_not_served_through_the_proxy() {
    let a = Daemon::start("");
    let b = Daemon::start("");
    let nginx = Nginx::start([&a.socket, &b.socket]);
    let r = try_tcp_request(&nginx.addr, "POST", "/v1/reload", &[], b"").unwrap();
    assert_eq!(r.status, 403);
    let r = try_tcp_request(&nginx.addr, "GET", "/readyz", &[], b"").unwrap();
    assert_eq!(r.status, 200);
}
