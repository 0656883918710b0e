//! Talking to a running daemon over its socket: `predict --socket` and
//! `bench`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use hyperlocal::{UnixConnector, Uri};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached.
    #[error("Cannot reach predictd at {socket}: {reason}")]
    Connect { socket: PathBuf, reason: String },
    /// The daemon answered with an error.
    #[error("predictd answered {status}: {body}")]
    Status { status: StatusCode, body: String },
}

/// A client for one daemon socket.
#[derive(Clone)]
pub struct Client {
    socket: PathBuf,
    inner: HyperClient<UnixConnector, Full<Bytes>>,
}

impl Client {
    pub fn new(socket: &Path) -> Client {
        let inner = HyperClient::builder(TokioExecutor::new()).build(UnixConnector);
        Client {
            socket: socket.to_owned(),
            inner,
        }
    }

    /// Sends one request and returns the status and body.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let uri: hyper::Uri = Uri::new(&self.socket, path_and_query).into();
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", content_type)
            .body(Full::new(body))
            .expect("request parts are valid");
        let connect_err = |reason: String| ClientError::Connect {
            socket: self.socket.clone(),
            reason,
        };
        let resp = self
            .inner
            .request(req)
            .await
            .map_err(|e| connect_err(format!("{e:?}")))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| connect_err(e.to_string()))?
            .to_bytes();
        Ok((status, body))
    }

    /// `POST /v1/predict` with the raw image; the JSON answer on success.
    pub async fn predict(
        &self,
        image: Bytes,
        query: &str,
    ) -> Result<serde_json::Value, ClientError> {
        let (status, body) = self
            .send(
                Method::POST,
                &format!("/v1/predict?{query}"),
                "application/octet-stream",
                image,
            )
            .await?;
        if status != StatusCode::OK {
            return Err(ClientError::Status {
                status,
                body: String::from_utf8_lossy(&body).trim().to_string(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Status {
            status,
            body: format!("unreadable JSON: {e}"),
        })
    }
}

/// What `bench` measured.
#[derive(Debug)]
pub struct BenchReport {
    pub requests: usize,
    pub errors: usize,
    pub elapsed: Duration,
    /// Successful requests' latencies, sorted.
    pub latencies: Vec<Duration>,
    /// Error statuses (or "connect") and their counts.
    pub error_kinds: std::collections::BTreeMap<String, usize>,
}

impl BenchReport {
    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i]
    }

    pub fn print(&self) {
        let secs = self.elapsed.as_secs_f64();
        println!(
            "requests:   {} in {:.2} s ({} errors)",
            self.requests, secs, self.errors
        );
        println!(
            "throughput: {:.1} requests/s",
            (self.requests - self.errors) as f64 / secs
        );
        if !self.latencies.is_empty() {
            let mean = self
                .latencies
                .iter()
                .map(Duration::as_secs_f64)
                .sum::<f64>()
                / self.latencies.len() as f64;
            println!("mean:       {:.1} ms", mean * 1000.0);
        }
        for (name, p) in [("p50", 0.50), ("p95", 0.95), ("p99", 0.99)] {
            println!(
                "{name}:        {:.1} ms",
                self.percentile(p).as_secs_f64() * 1000.0
            );
        }
        for (kind, n) in &self.error_kinds {
            println!("error {kind}: {n}");
        }
    }
}

/// Sends requests from `concurrency` tasks until `requests` are done or
/// `duration` has passed, cycling through `images`. With `rate`, request i
/// is sent no earlier than i / rate seconds after the start (latency is
/// still measured from the actual send).
pub async fn bench(
    client: Client,
    images: Vec<(Bytes, String)>,
    concurrency: usize,
    requests: Option<usize>,
    duration: Option<Duration>,
    rate: Option<f64>,
) -> BenchReport {
    let images = Arc::new(images);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = duration.map(|d| started + d);
    let limit = requests.unwrap_or(usize::MAX);
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, images, next) = (client.clone(), images.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors: Vec<String> = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= limit || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                }
                let (bytes, query) = &images[i % images.len()];
                let t = Instant::now();
                match client
                    .send(
                        Method::POST,
                        &format!("/v1/predict?{query}"),
                        "application/octet-stream",
                        bytes.clone(),
                    )
                    .await
                {
                    Ok((StatusCode::OK, _)) => lat.push(t.elapsed()),
                    Ok((status, _)) => errors.push(status.as_u16().to_string()),
                    Err(_) => errors.push("connect".into()),
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut error_kinds = std::collections::BTreeMap::new();
    for t in tasks {
        if let Ok((lat, errs)) = t.await {
            latencies.extend(lat);
            for e in errs {
                *error_kinds.entry(e).or_insert(0) += 1;
            }
        }
    }
    latencies.sort();
    let errors: usize = error_kinds.values().sum();
    BenchReport {
        requests: latencies.len() + errors,
        errors,
        elapsed: started.elapsed(),
        latencies,
        error_kinds,
    }
}
