//! Test harness: starts the real `predictd` binary on a socket in a temp
//! folder and talks HTTP/1.1 to it over the socket, as a client would.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_predictd");

/// The value of one metric line of `/metrics` (`name{labels}` or `name`),
/// 0 if absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file of little-endian f32s (the golden vectors' inputs and outputs).
pub fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The largest absolute difference between two vectors of scores.
pub fn max_abs_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

/// A JSON array of non-negative integers (a manifest's shapes).
pub fn json_dims(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

pub fn photo(name: &str) -> Vec<u8> {
    std::fs::read(root().join("tests/fixtures/photos").join(name)).unwrap()
}

/// The default config with the socket (and anything in `extra_server`) in
/// `dir`, models from the checkout.
pub fn write_config(dir: &Path, extra_server: &str, models: Option<&str>) -> PathBuf {
    let default = Command::new(BIN)
        .arg("config")
        .current_dir(root())
        .output()
        .unwrap();
    assert!(default.status.success());
    let mut text = String::from_utf8(default.stdout).unwrap();
    let socket = dir.join("predictd.sock");
    text = text.replace(
        &format!(
            "socket = {:?}",
            root().join("predictd.sock").display().to_string()
        ),
        &format!("socket = {:?}", socket.display().to_string()),
    );
    text = text.replace(
        &format!(
            "pidfile = {:?}",
            root().join("predictd.pid").display().to_string()
        ),
        &format!(
            "pidfile = {:?}",
            dir.join("predictd.pid").display().to_string()
        ),
    );
    if !extra_server.is_empty() {
        // Keys given here replace the printed ones of the same name.
        for line in extra_server.lines().filter(|l| l.contains('=')) {
            let key = line.split('=').next().unwrap().trim();
            let lines: Vec<String> = text
                .lines()
                .filter(|l| !l.starts_with(&format!("{key} =")))
                .map(String::from)
                .collect();
            text = lines.join("\n");
        }
        text = text.replacen("[server]\n", &format!("[server]\n{extra_server}\n"), 1);
    }
    if let Some(models) = models {
        let cut = text.find("[[model]]").unwrap();
        text = format!("{}{models}", &text[..cut]);
    }
    let path = dir.join("predictd.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Points the theme model of the config file at `graph` instead of the
/// shipped graph.
pub fn use_theme_graph(config: &Path, graph: &Path) {
    let text = std::fs::read_to_string(config).unwrap();
    let shipped = root()
        .join("models/themeClassifier.pb")
        .display()
        .to_string();
    assert!(
        text.contains(&shipped),
        "config does not name the shipped theme graph"
    );
    std::fs::write(config, text.replace(&shipped, &graph.display().to_string())).unwrap();
}

pub struct Daemon {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub stderr_path: PathBuf,
}

impl Daemon {
    /// Starts `predictd serve` in the foreground and waits until /readyz.
    pub fn start(extra_server: &str) -> Daemon {
        Self::start_with(extra_server, None)
    }

    pub fn start_with(extra_server: &str, models: Option<&str>) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), extra_server, models);
        Self::spawn(dir, config)
    }

    pub fn spawn(dir: tempfile::TempDir, config: PathBuf) -> Daemon {
        Self::spawn_args(dir, config, &[])
    }

    /// As [`Daemon::spawn`], with more `serve` arguments (`--http ADDR`).
    pub fn spawn_args(dir: tempfile::TempDir, config: PathBuf, args: &[&str]) -> Daemon {
        let stderr_path = dir.path().join("stderr.log");
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&config)
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let socket = dir.path().join("predictd.sock");
        let d = Daemon {
            child,
            dir,
            socket,
            config,
            stderr_path,
        };
        d.wait_ready();
        d
    }

    /// Kills the daemon (if it still runs) and starts it again on the same
    /// config, as a supervisor would; waits until it is ready.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&self.stderr_path)
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        self.wait_ready();
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = try_request(&self.socket, "GET", "/readyz", &[], b"") {
                if r.status == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "daemon not ready: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Response {
        request(&self.socket, "GET", path, &[], b"")
    }

    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Response {
        request(
            &self.socket,
            "POST",
            path,
            &[("Content-Type", content_type)],
            body,
        )
    }

    pub fn predict(&self, query: &str, body: &[u8]) -> Response {
        self.post(&format!("/v1/predict?{query}"), "image/jpeg", body)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// A good request must still be served: the daemon survived.
    pub fn assert_still_serves(&self) {
        let r = self.predict("x=100&y=100", &photo("skimage-coffee.jpg"));
        assert_eq!(r.status, 200, "daemon stopped serving: {}", r.text());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The `error.code` of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
    /// Asserts the status and error code; on failure names `what` and shows the body.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str, what: impl std::fmt::Display) {
        assert_eq!(
            (self.status, self.code().as_str()),
            (status, code),
            "{what}: {}",
            self.text()
        );
    }
}

pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(socket, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// The head of a one-shot HTTP/1.1 request (`Connection: close`).
fn request_head(method: &str, path: &str, headers: &[(&str, &str)], length: usize) -> String {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {length}\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

pub fn try_request(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(request_head(method, path, headers, body.len()).as_bytes())?;
    // The server may answer (413, 415) before reading the whole body.
    let _ = s.write_all(body);
    read_response(&mut s)
}

/// The same over TCP, for `--http`.
pub fn tcp_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_tcp_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

pub fn try_tcp_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(request_head(method, path, headers, body.len()).as_bytes())?;
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// Reads until the server closes. A reset after the answer (the server
/// closed with part of our body unread) still leaves the answer readable.
pub fn read_response(s: &mut UnixStream) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if raw.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[..eol]).trim(), 16)
                .map_err(|_| bad("chunk size"))?;
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[eol + 2 + size + 2..];
        }
        body = out;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// A TCP port that was free a moment ago, for `--http`.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A 4000x3000 JPEG with detail everywhere (so it decodes like a photo).
pub fn camera_photo() -> Vec<u8> {
    let img = image::RgbImage::from_fn(4000, 3000, |x, y| {
        let h = (x.wrapping_mul(2654435761) ^ y.wrapping_mul(40503)).wrapping_mul(2246822519);
        image::Rgb([
            (x / 16) as u8 ^ (h >> 24) as u8 & 0x1f,
            (y / 12) as u8,
            (h >> 8) as u8 & 0x3f,
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .unwrap();
    out.into_inner()
}

/// Marks a test as skipped: says so on stderr and in
/// target/test-skips.txt (tests/run prints it after the run). Where every
/// test must run (tests/run as root, as CI runs it, sets
/// PREDICTD_NO_SKIP), a skip is a failure instead.
pub fn skip(test: &str, reason: &str) {
    if std::env::var_os("PREDICTD_NO_SKIP").is_some() {
        panic!("{test} would be skipped ({reason}), but PREDICTD_NO_SKIP is set: it must run here");
    }
    eprintln!("skipped: {test}: {reason}");
    let file = root().join("target/test-skips.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
    {
        let _ = writeln!(f, "{test}: {reason}");
    }
}

/// Polls `f` until it holds, or fails the test after `secs`.
pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One model's entry of `GET /v1/models` on `socket`.
pub fn model_info(socket: &Path, name: &str) -> serde_json::Value {
    let models = request(socket, "GET", "/v1/models", &[], b"").json();
    models["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no model {name} in {models}"))
        .clone()
}

/// Runs `systemd-analyze verify` on `unit` saved as `file_name` (with
/// `ExecStart` pointed at the built binary, since verify checks it exists);
/// fails the test with systemd's complaint if it has one.
pub fn verify_unit(file_name: &str, unit: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name);
    std::fs::write(&path, unit.replace("/usr/bin/predictd", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (tests/run installs systemd)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains(&path.display().to_string()),
        "systemd-analyze verify {file_name}: {err}"
    );
}
