//! `predictd bench`: load a running daemon and report throughput and
//! latency percentiles.

use super::error::CliError;
use super::{runtime, CLIENT_TIMEOUT};
use crate::client::Client;
use bytes::Bytes;
use hyper::{Method, StatusCode};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long)]
    socket: PathBuf,
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[arg(long, conflicts_with = "duration")]
    requests: Option<usize>,
    /// Seconds to run.
    #[arg(long)]
    duration: Option<f64>,
    /// Send at this many requests per second in all (an open-loop load
    /// on a fixed schedule) instead of as fast as answers come back.
    #[arg(long)]
    rate: Option<f64>,
    /// Point to ask about (default: each image's centre).
    #[arg(long)]
    x: Option<u32>,
    #[arg(long)]
    y: Option<u32>,
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

pub fn run(args: Args) -> Result<(), CliError> {
    let mut inputs = Vec::new();
    for path in &args.images {
        let bytes = std::fs::read(path).map_err(|source| CliError::ReadInput {
            path: path.clone(),
            source,
        })?;
        let (_, w, h) = crate::image::header_dimensions(&bytes)
            .map_err(|e| CliError::Predict(path.display().to_string(), e.into()))?;
        let query = format!(
            "x={}&y={}",
            args.x.unwrap_or(w / 2),
            args.y.unwrap_or(h / 2)
        );
        inputs.push((Bytes::from(bytes), query));
    }
    let requests = match args.duration {
        None => Some(args.requests.unwrap_or(100)),
        Some(_) => args.requests,
    };
    let report = runtime(2)?.block_on(bench(
        Client::new(&args.socket).timeout(CLIENT_TIMEOUT),
        inputs,
        args.concurrency,
        requests,
        args.duration.map(Duration::from_secs_f64),
        args.rate.filter(|r| *r > 0.0),
    ));
    report.print();
    Ok(())
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
/// is due i / rate seconds after the start, and its latency is measured
/// from when it was due, not from when it could be sent: a stalled daemon
/// delays the requests queued behind it, and that delay is counted
/// (coordinated omission, as wrk2 measures it).
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
                let mut t = Instant::now();
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    t = due;
                }
                let (bytes, query) = &images[i % images.len()];
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
                    Err(crate::client::ClientError::Timeout { .. }) => {
                        errors.push("timeout".into())
                    }
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
