//! The client for applications: asks a running daemon over its socket, and
//! never makes the application fail.
//!
//! Suggestions are a help, never a requirement. [`Client::predict`] and
//! [`Client::feedback`] never return an error and never take longer than
//! the client's timeout (plus scheduling): when the daemon is missing,
//! refuses, resets, stalls, is overloaded or reloading, the answer says so
//! in [`Prediction::error`] and the application shows its page without
//! suggestions. After `failures` unavailable or timed-out calls in a row,
//! the client answers `circuit_open` at once for `cooldown`, then tries
//! again. This is the same contract as the Python client
//! (`clients/python`), described in ../shared/SPEC.md, "Clients for the
//! application".
//!
//! ```no_run
//! use predictd_client::Client;
//! # async fn page(photo: Vec<u8>) {
//! let client = Client::new("/run/predictd/predictd.sock")
//!     .timeout(std::time::Duration::from_millis(500));
//! let answer = client.predict(photo, 120.0, 80.0, &Default::default()).await;
//! if answer.ok {
//!     for s in answer.suggestions("theme") {
//!         println!("{} {:.2}", s.label, s.probability);
//!     }
//! } else {
//!     // Show the page without suggestions; `answer.error` says why.
//! }
//! # }
//! ```
//!
//! [`blocking::Client`] is the same for programs without an async runtime.
//! The lower-level [`Client::send`] (any route, errors as values) serves
//! `predictd bench` and `predictd health`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use hyperlocal::{UnixConnector, Uri};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The default deadline of a whole call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
/// Unavailable or timed-out calls in a row that open the circuit.
pub const DEFAULT_FAILURES: u32 = 5;
/// How long an open circuit answers `circuit_open` without trying.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(5);

/// What [`Client::send`] can fail with (the daemon did not answer).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached, or the connection broke.
    #[error("Cannot reach predictd at {socket}: {reason}")]
    Connect { socket: PathBuf, reason: String },
    /// No complete answer within the deadline.
    #[error("predictd at {socket} did not answer within {timeout:?}")]
    Timeout { socket: PathBuf, timeout: Duration },
}

/// The image to ask about: bytes, or a file the client reads.
#[derive(Debug, Clone)]
pub enum Image {
    Bytes(Bytes),
    /// Read by the client (not by the daemon, which may not see the same
    /// files); unreadable is answered with the error `not_found`.
    Path(PathBuf),
}

impl From<Vec<u8>> for Image {
    fn from(v: Vec<u8>) -> Image {
        Image::Bytes(v.into())
    }
}
impl From<Bytes> for Image {
    fn from(v: Bytes) -> Image {
        Image::Bytes(v)
    }
}
impl From<&[u8]> for Image {
    fn from(v: &[u8]) -> Image {
        Image::Bytes(Bytes::copy_from_slice(v))
    }
}
impl From<PathBuf> for Image {
    fn from(v: PathBuf) -> Image {
        Image::Path(v)
    }
}
impl From<&Path> for Image {
    fn from(v: &Path) -> Image {
        Image::Path(v.to_owned())
    }
}

/// Optional parts of a prediction request.
#[derive(Debug, Clone)]
pub struct Options {
    /// Models to run; `None` runs all.
    pub models: Option<Vec<String>>,
    /// Labels per model (the daemon's default is 5).
    pub top: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            models: None,
            top: 5,
        }
    }
}

/// One label and its probability.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Suggestion {
    pub label: String,
    pub probability: f64,
}

/// The outcome of [`Client::predict`]: suggestions, or why there are none.
#[derive(Debug, Clone, Default)]
pub struct Prediction {
    /// True only for a 200.
    pub ok: bool,
    /// Per model, the labels by decreasing probability; empty unless `ok`.
    pub predictions: BTreeMap<String, Vec<Suggestion>>,
    /// The prediction id, for [`Client::feedback`].
    pub id: Option<String>,
    /// `None`, or why there are no suggestions: `unavailable`, `timeout`,
    /// `overloaded`, `not_ready`, `rate_limited`, `circuit_open`, or the
    /// daemon's error code for a refused input (`invalid_image`, ...).
    pub error: Option<String>,
    /// The daemon's message for `error`, or what went wrong on the way.
    pub message: Option<String>,
    /// The HTTP status, when the daemon answered.
    pub status: Option<u16>,
    /// The whole JSON answer of a 200 (image size, crops, timing, ...).
    pub body: Option<serde_json::Value>,
}

impl Prediction {
    fn failed(error: &str, message: impl Into<String>, status: Option<u16>) -> Prediction {
        Prediction {
            error: Some(error.to_string()),
            message: Some(message.into()),
            status,
            ..Prediction::default()
        }
    }

    /// The suggestions of one model; empty when there are none.
    pub fn suggestions(&self, model: &str) -> &[Suggestion] {
        self.predictions.get(model).map_or(&[], Vec::as_slice)
    }
}

/// Consecutive failures, and until when the circuit stays open.
#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

/// A client for one daemon socket. Cheap to clone; clones share the
/// connection pool and the circuit breaker.
#[derive(Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
    failures: u32,
    cooldown: Duration,
    breaker: Arc<Mutex<Breaker>>,
    inner: HyperClient<UnixConnector, Full<Bytes>>,
}

impl Client {
    /// A client with the default timeout (0.5 s for the whole call) and
    /// circuit breaker (5 failures, 5 s cooldown).
    pub fn new(socket: impl AsRef<Path>) -> Client {
        let inner = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(UnixConnector);
        Client {
            socket: socket.as_ref().to_owned(),
            timeout: DEFAULT_TIMEOUT,
            failures: DEFAULT_FAILURES,
            cooldown: DEFAULT_COOLDOWN,
            breaker: Arc::default(),
            inner,
        }
    }

    /// The deadline of each whole call (connect, send, answer).
    pub fn timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Opens the circuit after `failures` unavailable or timed-out calls
    /// in a row (0 never opens it), for `cooldown`.
    pub fn circuit_breaker(mut self, failures: u32, cooldown: Duration) -> Client {
        self.failures = failures;
        self.cooldown = cooldown;
        self
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Asks for the suggestions at `(x, y)`. Never fails and never takes
    /// longer than the timeout: see [`Prediction::error`].
    pub async fn predict(
        &self,
        image: impl Into<Image>,
        x: f64,
        y: f64,
        options: &Options,
    ) -> Prediction {
        let deadline = Instant::now() + self.timeout;
        if let Some(open) = self.circuit_open() {
            return open;
        }
        let bytes = match image.into() {
            Image::Bytes(b) => b,
            Image::Path(p) => {
                let read = tokio::time::timeout_at(deadline.into(), tokio::fs::read(&p)).await;
                match read {
                    Ok(Ok(b)) => b.into(),
                    Ok(Err(e)) => {
                        return Prediction::failed(
                            "not_found",
                            format!("Cannot read {}: {e}", p.display()),
                            None,
                        )
                    }
                    // Reading the caller's own file: says nothing of the
                    // daemon, so the circuit breaker does not count it.
                    Err(_) => return Prediction::failed("timeout", "reading the image", None),
                }
            }
        };
        let query = predict_query(x, y, options);
        let answer = self
            .send_until(
                deadline,
                Method::POST,
                &format!("/v1/predict?{query}"),
                "application/octet-stream",
                bytes,
            )
            .await;
        let prediction = match answer {
            Err(e) => failure_of(&e),
            Ok((status, body)) => from_answer(status, &body),
        };
        self.record(prediction)
    }

    /// Records what the user finally chose for a prediction. True when
    /// the daemon recorded it; never fails, never exceeds the timeout.
    pub async fn feedback(&self, id: &str, model: &str, chosen: &str) -> bool {
        if self.circuit_open().is_some() {
            return false;
        }
        let body = serde_json::json!({"id": id, "model": model, "chosen": chosen});
        let answer = self
            .send_until(
                Instant::now() + self.timeout,
                Method::POST,
                "/v1/feedback",
                "application/json",
                body.to_string().into(),
            )
            .await;
        let outcome = match answer {
            Err(e) => failure_of(&e),
            Ok((status, _)) if status.is_success() => Prediction {
                ok: true,
                ..Prediction::default()
            },
            Ok((status, body)) => from_answer(status, &body),
        };
        self.record(outcome).ok
    }

    /// `Some(circuit_open)` while the circuit is open.
    fn circuit_open(&self) -> Option<Prediction> {
        let breaker = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        match breaker.open_until {
            Some(until) if Instant::now() < until => Some(Prediction::failed(
                "circuit_open",
                format!(
                    "predictd failed {} times in a row; not asking again for {:.1} s",
                    breaker.failures,
                    (until - Instant::now()).as_secs_f64()
                ),
                None,
            )),
            _ => None,
        }
    }

    /// Counts the outcome for the circuit breaker.
    fn record(&self, outcome: Prediction) -> Prediction {
        let mut breaker = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        match outcome.error.as_deref() {
            Some("unavailable" | "timeout") => {
                breaker.failures = breaker.failures.saturating_add(1);
                if self.failures > 0 && breaker.failures >= self.failures {
                    breaker.open_until = Some(Instant::now() + self.cooldown);
                }
            }
            _ => {
                // The daemon answered: whatever it said, it is there.
                breaker.failures = 0;
                breaker.open_until = None;
            }
        }
        outcome
    }

    /// Sends one request and returns the status and the whole body, within
    /// the client's timeout.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.send_until(
            Instant::now() + self.timeout,
            method,
            path_and_query,
            content_type,
            body,
        )
        .await
    }

    async fn send_until(
        &self,
        deadline: Instant,
        method: Method,
        path_and_query: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let connect_err = |reason: String| ClientError::Connect {
            socket: self.socket.clone(),
            reason,
        };
        let exchange = async {
            let uri: hyper::Uri = Uri::new(&self.socket, path_and_query).into();
            let build = || {
                Request::builder()
                    .method(method.clone())
                    .uri(uri.clone())
                    .header("content-type", content_type)
                    .body(Full::new(body.clone()))
                    .map_err(|e| connect_err(format!("bad request: {e}")))
            };
            let resp = match self.inner.request(build()?).await {
                Ok(resp) => resp,
                // A kept-alive connection the daemon closed meanwhile fails
                // before any answer: once, on a new connection, within the
                // same deadline. (Not a retry of an answer: a 503 or 429 is
                // returned as it is.)
                Err(e) if !e.is_connect() => self
                    .inner
                    .request(build()?)
                    .await
                    .map_err(|e| connect_err(describe(&e)))?,
                Err(e) => return Err(connect_err(describe(&e))),
            };
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| connect_err(format!("answer cut short: {e}")))?
                .to_bytes();
            Ok((status, body))
        };
        match tokio::time::timeout_at(deadline.into(), exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(ClientError::Timeout {
                socket: self.socket.clone(),
                timeout: self.timeout,
            }),
        }
    }
}

/// The error chain of a failed request, outermost first ("client error
/// (Connect): No such file or directory").
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// `x=..&y=..&top=..[&models=..]`, every value encoded.
fn predict_query(x: f64, y: f64, options: &Options) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("x", &x.to_string());
    q.append_pair("y", &y.to_string());
    q.append_pair("top", &options.top.to_string());
    if let Some(models) = &options.models {
        q.append_pair("models", &models.join(","));
    }
    q.finish()
}

fn failure_of(e: &ClientError) -> Prediction {
    match e {
        ClientError::Connect { .. } => Prediction::failed("unavailable", e.to_string(), None),
        ClientError::Timeout { .. } => Prediction::failed("timeout", e.to_string(), None),
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}
#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

#[derive(Deserialize)]
struct Answer {
    id: Option<String>,
    #[serde(default)]
    predictions: BTreeMap<String, Vec<Suggestion>>,
}

/// A daemon's answer as a [`Prediction`]. An answer that is not the
/// daemon's JSON (a proxy's error page, say) counts as `unavailable`.
fn from_answer(status: StatusCode, body: &Bytes) -> Prediction {
    let code = status.as_u16();
    if status == StatusCode::OK {
        let parsed = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| Some((serde_json::from_value::<Answer>(v.clone()).ok()?, v)));
        return match parsed {
            Some((answer, value)) => Prediction {
                ok: true,
                predictions: answer.predictions,
                id: answer.id,
                status: Some(code),
                body: Some(value),
                ..Prediction::default()
            },
            None => Prediction::failed("unavailable", "unreadable answer", Some(code)),
        };
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => Prediction::failed(&e.error.code, e.error.message, Some(code)),
        Err(_) => {
            let error = match status {
                StatusCode::TOO_MANY_REQUESTS => "rate_limited",
                StatusCode::GATEWAY_TIMEOUT => "timeout",
                _ => "unavailable",
            };
            let text = String::from_utf8_lossy(body);
            Prediction::failed(error, format!("HTTP {code}: {}", text.trim()), Some(code))
        }
    }
}

/// The same client for programs without an async runtime: each call runs
/// on the client's own small runtime.
pub mod blocking {
    use super::{Image, Options, Prediction};
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    #[derive(Clone)]
    pub struct Client {
        inner: super::Client,
        runtime: Arc<tokio::runtime::Runtime>,
    }

    impl Client {
        /// See [`super::Client::new`]. Panics only if the operating system
        /// refuses a thread for the runtime.
        pub fn new(socket: impl AsRef<Path>) -> Client {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("predictd-client")
                .enable_all()
                .build()
                .expect("the client's runtime starts");
            // The connection pool spawns onto the runtime it is built in.
            let inner = {
                let _guard = runtime.enter();
                super::Client::new(socket)
            };
            Client {
                inner,
                runtime: Arc::new(runtime),
            }
        }

        pub fn timeout(mut self, timeout: Duration) -> Client {
            self.inner = self.inner.timeout(timeout);
            self
        }

        pub fn circuit_breaker(mut self, failures: u32, cooldown: Duration) -> Client {
            self.inner = self.inner.circuit_breaker(failures, cooldown);
            self
        }

        /// See [`super::Client::predict`].
        pub fn predict(
            &self,
            image: impl Into<Image>,
            x: f64,
            y: f64,
            options: &Options,
        ) -> Prediction {
            let image = image.into();
            self.runtime
                .block_on(self.inner.predict(image, x, y, options))
        }

        /// See [`super::Client::feedback`].
        pub fn feedback(&self, id: &str, model: &str, chosen: &str) -> bool {
            self.runtime
                .block_on(self.inner.feedback(id, model, chosen))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        let options = Options {
            models: Some(vec!["a b".into(), "c&d".into()]),
            top: 3,
        };
        assert_eq!(
            predict_query(1.5, 2.0, &options),
            "x=1.5&y=2&top=3&models=a+b%2Cc%26d"
        );
    }

    #[test]
    fn answers_map_to_errors() {
        let overloaded = br#"{"error":{"code":"overloaded","message":"queue full"}}"#;
        let p = from_answer(
            StatusCode::SERVICE_UNAVAILABLE,
            &Bytes::from_static(overloaded),
        );
        assert_eq!(p.error.as_deref(), Some("overloaded"));
        assert!(!p.ok && p.predictions.is_empty());
        let p = from_answer(StatusCode::BAD_GATEWAY, &Bytes::from_static(b"<html>"));
        assert_eq!(p.error.as_deref(), Some("unavailable"));
        let p = from_answer(StatusCode::TOO_MANY_REQUESTS, &Bytes::from_static(b""));
        assert_eq!(p.error.as_deref(), Some("rate_limited"));
        let ok = br#"{"id":"i","predictions":{"color":[{"label":"red","probability":0.9}]}}"#;
        let p = from_answer(StatusCode::OK, &Bytes::from_static(ok));
        assert!(p.ok);
        assert_eq!(p.id.as_deref(), Some("i"));
        assert_eq!(p.suggestions("color")[0].label, "red");
        assert!(p.suggestions("theme").is_empty());
    }
}
