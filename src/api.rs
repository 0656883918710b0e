//! HTTP routes: one table turns a request into a typed action, one
//! `From` impl turns every error into a status and a JSON body.

use crate::config::Config;
use crate::feedback::{FeedbackError, FeedbackStore};
use crate::imaging::ImageError;
use crate::metrics::{
    ListenerLabels, Metrics, ModelLabels, OutcomeLabels, RequestLabels, RouteLabels,
};
use crate::models::{ModelError, Registry};
use crate::predict::{self, Params, PredictError};
use crate::ratelimit::{Caller, ConnectionCounts, RateLimiter};
use crate::server::Options;
use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub type Body = Full<Bytes>;

/// Who is calling: the Unix socket gives the peer's credentials
/// (`SO_PEERCRED`), TCP only an address.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    Unix {
        uid: u32,
        gid: u32,
        pid: Option<i32>,
    },
    Tcp(SocketAddr),
}

impl Peer {
    pub fn uid(&self) -> Option<u32> {
        match self {
            Peer::Unix { uid, .. } => Some(*uid),
            Peer::Tcp(_) => None,
        }
    }

    /// Whom per-caller limits count: the uid on the socket, the address
    /// on TCP.
    pub fn caller(&self) -> Caller {
        match self {
            Peer::Unix { uid, .. } => Caller::Uid(*uid),
            Peer::Tcp(addr) => Caller::Addr(addr.ip()),
        }
    }

    /// The listener's name in metrics.
    fn listener(&self) -> &'static str {
        match self {
            Peer::Unix { .. } => "unix",
            Peer::Tcp(_) => "tcp",
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Unix { uid, .. } => write!(f, "uid={uid}"),
            Peer::Tcp(addr) => write!(f, "addr={addr}"),
        }
    }
}

/// Everything a request may need, shared by every connection.
pub struct State {
    /// Swapped whole on reload.
    pub config: ArcSwap<Config>,
    /// `None` until the first load finishes: `/readyz` says 503 meanwhile.
    pub registry: ArcSwapOption<Registry>,
    /// Requests being handled now, so shutdown knows when all are done.
    pub in_flight: AtomicU64,
    /// How to re-read the config on reload.
    pub options: Options,
    /// One reload at a time; a second waits for the first.
    reload_lock: Mutex<()>,
    /// Per-caller token buckets (`rate-per-uid`, `rate-burst`).
    pub limiter: RateLimiter,
    /// Open connections per caller (`max-connections-per-uid`).
    pub connections: Arc<ConnectionCounts>,
    pub metrics: Metrics,
    /// Recent predictions, feedback and hit rates.
    pub feedback: FeedbackStore,
    /// `max-decoding-pixels`, shared by every request (fixed at start).
    pub decode_budget: crate::imaging::PixelBudget,
    /// `image-cache-bytes` of decoded images (fixed at start).
    pub image_cache: crate::cache::ImageCache,
}

/// A `[server]` size fixed at start (the budget and cache are built from it
/// once): a reload that changes it warns and keeps the running value.
fn keep_until_restart(key: &str, new: &mut u64, running: u64) {
    if *new != running {
        log::warn!("reload: a new server.{key} takes a restart; still {running}");
        *new = running;
    }
}

/// What a successful reload swapped in.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    pub status: &'static str,
    /// Model name to its new version.
    pub models: std::collections::BTreeMap<String, String>,
    pub ms: f64,
}

impl State {
    pub fn new(config: Config, options: Options, feedback: FeedbackStore) -> State {
        State {
            decode_budget: crate::imaging::PixelBudget::new(config.server.max_decoding_pixels),
            image_cache: crate::cache::ImageCache::new(config.server.image_cache_bytes),
            config: ArcSwap::from_pointee(config),
            registry: ArcSwapOption::empty(),
            in_flight: AtomicU64::new(0),
            options,
            reload_lock: Mutex::new(()),
            limiter: RateLimiter::new(),
            connections: Arc::default(),
            metrics: Metrics::new(),
            feedback,
        }
    }

    /// Puts a loaded registry in service.
    pub fn install(&self, registry: Registry) {
        self.metrics.set_models(&registry);
        self.registry.store(Some(Arc::new(registry)));
    }

    /// Re-reads the config and loads every model on the side; only when all
    /// load and pass their test inference are config and models swapped in.
    /// Requests in flight keep the registry they started with. On failure
    /// nothing changes. Blocking: call from a plain thread.
    pub fn reload(&self) -> Result<ReloadReport, String> {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        let built = self
            .options
            .load_config()
            .map_err(|e| e.to_string())
            .and_then(|config| {
                Registry::load(&config)
                    .map(|r| (config, r))
                    .map_err(|e| e.to_string())
            });
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match built {
            Ok((mut config, registry)) => {
                let old = self.config.load_full();
                if config.server.socket != old.server.socket {
                    log::warn!(
                        "reload: a new server.socket takes a restart; still serving {}",
                        old.server.socket.display()
                    );
                    config.server.socket = old.server.socket.clone();
                }
                if config.server.feedback_log != old.server.feedback_log {
                    log::warn!(
                        "reload: a new server.feedback-log takes a restart; still writing {}",
                        old.server.feedback_log.display()
                    );
                    config.server.feedback_log = old.server.feedback_log.clone();
                }
                keep_until_restart(
                    "max-decoding-pixels",
                    &mut config.server.max_decoding_pixels,
                    old.server.max_decoding_pixels,
                );
                keep_until_restart(
                    "image-cache-bytes",
                    &mut config.server.image_cache_bytes,
                    old.server.image_cache_bytes,
                );
                self.feedback.set_capacity(config.server.recent_predictions);
                let models = registry
                    .models
                    .iter()
                    .map(|m| (m.info.name.clone(), m.info.version.clone()))
                    .collect();
                self.config.store(Arc::new(config));
                self.install(registry);
                self.metrics
                    .reloads
                    .get_or_create(&OutcomeLabels {
                        outcome: "ok".into(),
                    })
                    .inc();
                log::info!("reload: ok in {ms:.0} ms: {models:?}");
                Ok(ReloadReport {
                    status: "reloaded",
                    models,
                    ms,
                })
            }
            Err(e) => {
                self.metrics
                    .reloads
                    .get_or_create(&OutcomeLabels {
                        outcome: "failed".into(),
                    })
                    .inc();
                log::error!("reload: failed after {ms:.0} ms, still serving the old models: {e}");
                Err(e)
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("Method {method} is not allowed on {path}")]
    MethodNotAllowed {
        method: Method,
        path: String,
        allow: &'static str,
    },
    #[error("Request body over the limit of {0} bytes")]
    PayloadTooLarge(u64),
    #[error("{0}")]
    ImageTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    InvalidImage(String),
    #[error("{0}")]
    PointOutOfBounds(String),
    /// How long until the caller's next token.
    #[error("Too many requests; retry in {} s", retry_after_secs(*.0))]
    RateLimited(Duration),
    #[error("{0}")]
    Overloaded(String),
    #[error("Models are not loaded yet")]
    NotReady,
    #[error("Request not answered within {0} ms")]
    Timeout(u64),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use ApiError::*;
        match self {
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ImageTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "image_too_large"),
            UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            InvalidImage(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_image"),
            PointOutOfBounds(_) => (StatusCode::UNPROCESSABLE_ENTITY, "point_out_of_bounds"),
            RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let (status, code) = self.status_and_code();
        let body = serde_json::json!({"error": {"code": code, "message": self.to_string()}});
        let mut resp = json_response(status, &body);
        match self {
            ApiError::RateLimited(wait) => {
                resp.headers_mut()
                    .insert("retry-after", HeaderValue::from(retry_after_secs(wait)));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                resp.headers_mut()
                    .insert("allow", HeaderValue::from_static(allow));
            }
            ApiError::Overloaded(_) | ApiError::NotReady => {
                resp.headers_mut()
                    .insert("retry-after", HeaderValue::from(1));
            }
            _ => {}
        }
        resp
    }
}

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> Self {
        match e {
            ImageError::UnsupportedFormat => ApiError::UnsupportedMediaType(e.to_string()),
            ImageError::TooLarge { .. } => ApiError::ImageTooLarge(e.to_string()),
            ImageError::Empty | ImageError::Invalid { .. } => ApiError::InvalidImage(e.to_string()),
        }
    }
}

impl From<ModelError> for ApiError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Overloaded(_) | ModelError::Gone(_) => ApiError::Overloaded(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<PredictError> for ApiError {
    fn from(e: PredictError) -> Self {
        match e {
            PredictError::BadRequest(m) => ApiError::BadRequest(m),
            PredictError::UnknownModel(_) => ApiError::NotFound(e.to_string()),
            PredictError::PointOutOfBounds { .. } => ApiError::PointOutOfBounds(e.to_string()),
            PredictError::Image(i) => i.into(),
            PredictError::Model(m) => m.into(),
        }
    }
}

pub fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// What a request asks for, decided from method and path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Page,
    Predict,
    Feedback,
    Stats,
    Metrics,
    Models,
    Reload,
    Healthz,
    Readyz,
}

fn route(method: &Method, path: &str) -> Result<Route, ApiError> {
    let (route, allow) = match path {
        "/" => (Route::Page, "GET"),
        "/v1/predict" => (Route::Predict, "POST"),
        "/v1/feedback" => (Route::Feedback, "POST"),
        "/v1/stats" => (Route::Stats, "GET"),
        "/metrics" => (Route::Metrics, "GET"),
        "/v1/models" => (Route::Models, "GET"),
        "/v1/reload" => (Route::Reload, "POST"),
        "/healthz" => (Route::Healthz, "GET"),
        "/readyz" => (Route::Readyz, "GET"),
        _ => return Err(ApiError::NotFound(format!("No route {path}"))),
    };
    let allowed = allow == method.as_str() || (allow == "GET" && method == Method::HEAD);
    if !allowed {
        return Err(ApiError::MethodNotAllowed {
            method: method.clone(),
            path: path.to_string(),
            allow,
        });
    }
    Ok(route)
}

/// The page of `GET /`: one self-contained file, no outside resources.
const PAGE: &str = include_str!("page.html");

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);

/// Entry point for every request on every listener.
pub async fn handle(
    state: Arc<State>,
    peer: Peer,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let started = Instant::now();
    let seq = REQUEST_SEQ.fetch_add(1, Ordering::Relaxed);
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    state.in_flight.fetch_add(1, Ordering::SeqCst);
    state.metrics.in_flight.inc();
    // A reload answers when the new models are checked, which may take
    // longer than a prediction is allowed to.
    let timeout_ms = match path.as_str() {
        "/v1/reload" => 600_000,
        _ => state.config.load().server.request_timeout_ms,
    };
    let outcome = tokio::time::timeout(
        Duration::from_millis(timeout_ms),
        dispatch(&state, peer, req),
    )
    .await;
    let resp = match outcome {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::Timeout(timeout_ms).into_response(),
    };
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    state.metrics.in_flight.dec();
    let elapsed = started.elapsed();
    // Unknown paths share one label, so scanners cannot grow the metrics.
    let route_label = match route(&Method::GET, &path).or_else(|_| route(&Method::POST, &path)) {
        Ok(_) => path.clone(),
        Err(_) => "other".to_string(),
    };
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route_label.clone(),
            status: resp.status().as_u16(),
        })
        .inc();
    state
        .metrics
        .request_seconds
        .get_or_create(&RouteLabels { route: route_label })
        .observe(elapsed.as_secs_f64());
    log::info!(
        "request: seq={seq} {peer} method={method} route={path} status={} ms={:.2}",
        resp.status().as_u16(),
        elapsed.as_secs_f64() * 1000.0
    );
    Ok(resp)
}

/// Who may do what: `allowed-uids` on the socket, the bearer token on TCP,
/// `admin-uids` for reload (never over TCP).
fn authorize(
    state: &State,
    peer: &Peer,
    req: &Request<Incoming>,
    route: Route,
) -> Result<(), ApiError> {
    let config = state.config.load();
    let server = &config.server;
    match peer {
        Peer::Unix { uid, .. } => {
            if !server.allowed_uids.is_empty() && !server.allowed_uids.contains(uid) {
                return Err(ApiError::Forbidden(format!(
                    "uid {uid} is not in server.allowed-uids"
                )));
            }
            if route == Route::Reload && !server.admin_uids.contains(uid) {
                return Err(ApiError::Forbidden(format!(
                    "uid {uid} is not in server.admin-uids"
                )));
            }
        }
        Peer::Tcp(_) => {
            // The page itself holds nothing secret; it asks for the token.
            if !server.http_token.is_empty() && route != Route::Page {
                let expected = format!("Bearer {}", server.http_token);
                let sent = req
                    .headers()
                    .get(hyper::header::AUTHORIZATION)
                    .map(|v| v.as_bytes());
                if !sent.is_some_and(|s| constant_time_eq(s, expected.as_bytes())) {
                    return Err(ApiError::Unauthorized(
                        "Send Authorization: Bearer <server.http-token>".into(),
                    ));
                }
            }
            if route == Route::Reload {
                return Err(ApiError::Forbidden(
                    "/v1/reload is only served on the Unix socket".into(),
                ));
            }
        }
    }
    Ok(())
}

/// Reads and drops a small body before a refusal (404, 405, 401, 403,
/// 429): closing the connection with the upload unread would reset it,
/// and the client would see a broken connection instead of the answer.
/// Large bodies are not worth reading for a refusal; a client that sends
/// `Expect: 100-continue` never sends them.
async fn drain_small_body<B: RequestBody>(req: Request<B>) {
    const MAX: u64 = 1 << 20;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX) {
        return;
    }
    let body = Limited::new(req.into_body(), MAX as usize);
    let _ = tokio::time::timeout(Duration::from_millis(250), body.collect()).await;
}

/// Takes a token from the caller's bucket: the uid on the socket, the
/// address on TCP, or, for a proxy among `trusted-proxy-uids`, the client
/// address it names in `X-Forwarded-For`.
fn rate_limit(state: &State, peer: &Peer, headers: &hyper::HeaderMap) -> Result<(), ApiError> {
    let server = &state.config.load().server;
    let caller = forwarded_caller(&server.trusted_proxy_uids, peer, headers).unwrap_or(peer.caller());
    state
        .limiter
        .check(caller, server.rate_per_uid, server.rate_burst)
        .map_err(|wait| {
            state
                .metrics
                .rate_limited
                .get_or_create(&ListenerLabels {
                    listener: peer.listener().into(),
                })
                .inc();
            ApiError::RateLimited(wait)
        })
}

/// The client a trusted proxy (a Unix peer whose uid is in
/// `trusted-proxy-uids`) names: the last address of `X-Forwarded-For`, the
/// one the proxy itself added. Anyone else's header is ignored.
fn forwarded_caller(trusted: &[u32], peer: &Peer, headers: &hyper::HeaderMap) -> Option<Caller> {
    let uid = peer.uid()?;
    if !trusted.contains(&uid) {
        return None;
    }
    let last = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .last()?;
    last.trim().parse().ok().map(Caller::Addr)
}

/// The longest a 429 is held back (see `dispatch`).
const MAX_RATE_LIMIT_PACE: Duration = Duration::from_secs(1);

/// `Retry-After` in whole seconds, at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn dispatch(
    state: &Arc<State>,
    peer: Peer,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let admitted = route(req.method(), req.uri().path()).and_then(|route| {
        authorize(state, &peer, &req, route)?;
        if !matches!(route, Route::Healthz | Route::Readyz | Route::Metrics) {
            rate_limit(state, &peer, req.headers())?;
        }
        Ok(route)
    });
    let route = match admitted {
        Ok(route) => route,
        Err(e) => {
            let refused = tokio::time::Instant::now();
            drain_small_body(req).await;
            // A caller over its rate hears so when its next token is due
            // (at most MAX_RATE_LIMIT_PACE later, and well inside the
            // request timeout), not at once: a client looping on 429s
            // would otherwise spin through thousands a second, and the CPU
            // that costs, in the daemon and in the client, is taken from
            // every other caller. Each connection of a flooding caller
            // gets about `rate-per-uid` answers a second this way; a
            // waiting answer holds no worker and no queue slot.
            if let ApiError::RateLimited(wait) = e {
                let timeout = Duration::from_millis(state.config.load().server.request_timeout_ms);
                let pace = wait.min(MAX_RATE_LIMIT_PACE).min(timeout / 2);
                tokio::time::sleep_until(refused + pace).await;
            }
            return Err(e);
        }
    };
    match route {
        Route::Page => {
            let mut resp = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            Ok(resp)
        }
        Route::Feedback => {
            let body = read_body(req, 64 * 1024).await?;
            let fb: FeedbackRequest = serde_json::from_slice(&body)
                .map_err(|e| ApiError::BadRequest(format!("Malformed feedback JSON: {e}")))?;
            let st = state.clone();
            let model = fb.model.clone();
            tokio::task::spawn_blocking(move || st.feedback.submit(&fb.id, &fb.model, &fb.chosen))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))??;
            state
                .metrics
                .feedback
                .get_or_create(&ModelLabels { model })
                .inc();
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::NO_CONTENT;
            Ok(resp)
        }
        Route::Stats => Ok(json_response(StatusCode::OK, &state.feedback.report())),
        Route::Metrics => {
            refresh_gauges(state);
            let mut resp = Response::new(Full::new(Bytes::from(state.metrics.encode())));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            Ok(resp)
        }
        Route::Healthz => Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({"status": "ok"}),
        )),
        Route::Readyz => match state.registry.load_full() {
            Some(_) => Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"status": "ready"}),
            )),
            None => Err(ApiError::NotReady),
        },
        Route::Models => {
            let registry = state.registry.load_full().ok_or(ApiError::NotReady)?;
            let models: Vec<_> = registry.models.iter().map(|m| &m.info).collect();
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"models": models}),
            ))
        }
        Route::Reload => {
            let st = state.clone();
            match tokio::task::spawn_blocking(move || st.reload()).await {
                Ok(Ok(report)) => Ok(json_response(StatusCode::OK, &report)),
                Ok(Err(e)) => Err(ApiError::Internal(format!(
                    "Reload failed, still serving the old models: {e}"
                ))),
                Err(e) => Err(ApiError::Internal(format!("Reload failed: {e}"))),
            }
        }
        Route::Predict => {
            let registry = state.registry.load_full().ok_or(ApiError::NotReady)?;
            let config = state.config.load_full();
            let (bytes, params) = read_predict_input(&config, req).await?;
            let mut prediction = match predict::predict(
                registry,
                bytes,
                &params,
                config.server.max_pixels,
                Some(&state.decode_budget),
                Some(&state.image_cache),
            )
            .await
            {
                Ok(p) => p,
                Err(e) => {
                    if let PredictError::Model(ModelError::Overloaded(model)) = &e {
                        state
                            .metrics
                            .queue_rejections
                            .get_or_create(&ModelLabels {
                                model: model.clone(),
                            })
                            .inc();
                    }
                    return Err(e.into());
                }
            };
            observe_prediction(state, &peer, &prediction);
            let offers = std::mem::take(&mut prediction.offers);
            state.feedback.record_prediction(&prediction.id, offers);
            Ok(json_response(StatusCode::OK, &prediction))
        }
    }
}

/// Any request body hyper or a test can give.
pub trait RequestBody:
    hyper::body::Body<Data = Bytes, Error = Self::E> + Send + Unpin + 'static
{
    type E: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static;
}

impl<B> RequestBody for B
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type E = B::Error;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackRequest {
    id: String,
    model: String,
    chosen: String,
}

/// Metrics and the log line of one served prediction.
fn observe_prediction(state: &State, peer: &Peer, p: &predict::Prediction) {
    let m = &state.metrics;
    let t = |k: &str| p.timing_ms.get(k).copied().unwrap_or(0.0);
    m.decode_seconds.observe(t("decode") / 1000.0);
    match p.cache_hit {
        Some(true) => m.image_cache_hits.inc(),
        Some(false) => m.image_cache_misses.inc(),
        None => 0,
    };
    let mut models = Vec::new();
    let mut crops = Vec::new();
    let mut tops = Vec::new();
    let mut inference = Vec::new();
    for (name, version) in &p.models {
        let labels = ModelLabels {
            model: name.clone(),
        };
        m.inference_seconds
            .get_or_create(&labels)
            .observe(t(name) / 1000.0);
        m.batch_size.get_or_create(&labels).observe(1.0);
        let short = version.get(..version.len().min(19)).unwrap_or(version);
        models.push(format!("{name}@{short}"));
        if let Some(w) = p.crops.get(name) {
            crops.push(format!("{name}:{}x{}+{}+{}", w.width, w.height, w.x, w.y));
        }
        if let Some(best) = p.predictions.get(name).and_then(|v| v.first()) {
            tops.push(format!("{name}:{:?}:{:.3}", best.label, best.probability));
        }
        inference.push(format!("{name}:{:.2}", t(name)));
    }
    log::info!(
        "prediction: id={} {peer} image={}x{} point={},{} models={} crop={} top1={} decode_ms={:.2} inference_ms={} total_ms={:.2}",
        p.id,
        p.image.width,
        p.image.height,
        p.point[0],
        p.point[1],
        models.join(","),
        crops.join(","),
        tops.join(","),
        t("decode"),
        inference.join(","),
        t("total"),
    );
}

/// Sets the gauges that describe the present: queue depths, feedback hit
/// rates.
fn refresh_gauges(state: &State) {
    let m = &state.metrics;
    m.decoding_pixels.set(state.decode_budget.in_use() as i64);
    let cache = state.image_cache.stats();
    m.image_cache_bytes.set(cache.bytes as i64);
    m.image_cache_images.set(cache.images as i64);
    if let Some(registry) = state.registry.load_full() {
        for model in &registry.models {
            m.queue_depth
                .get_or_create(&ModelLabels {
                    model: model.info.name.clone(),
                })
                .set(model.queue_depth() as i64);
        }
    }
    for (name, report) in state.feedback.report().models {
        for (rank, rate) in [("top1", report.rates.top1), ("top5", report.rates.top5)] {
            if let Some(rate) = rate {
                m.feedback_hit_ratio
                    .get_or_create(&crate::metrics::HitLabels {
                        model: name.clone(),
                        rank: rank.into(),
                    })
                    .set(rate);
            }
        }
    }
}

/// The three ways an image arrives: raw body, multipart form, JSON path.
/// Public so the fuzz targets drive the exact code the daemon runs.
pub async fn read_predict_input<B: RequestBody>(
    config: &Config,
    req: Request<B>,
) -> Result<(Bytes, Params), ApiError> {
    let query = req.uri().query().unwrap_or("").to_string();
    let q = Query::parse(&query);
    // The boundary is case-sensitive (browsers send mixed case): only the
    // media type is compared without case.
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let limit = config.server.max_body_bytes;
    if mime == "multipart/form-data" {
        let boundary = multer::parse_boundary(&content_type)
            .map_err(|_| ApiError::BadRequest("multipart/form-data without a boundary".into()))?;
        check_declared_length(&req, limit)?;
        return read_multipart(req.into_body(), boundary, q, limit).await;
    }
    if mime == "application/json" {
        let body = read_body(req, limit).await?;
        return read_json_path(config, &body, &q).await;
    }
    // Anything else is the image itself, whatever it is labelled (curl's
    // --data-binary says x-www-form-urlencoded): its bytes decide.
    // The body first: a client still sending when the answer comes would
    // see its connection reset instead of the 400.
    let body = read_body(req, limit).await?;
    let params = Params::from_text(q.get("x"), q.get("y"), q.get("models"), q.get("top"))?;
    Ok((body, params))
}

/// Query-string parameters, last value wins.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Query {
        Query(form_urlencoded::parse(q.as_bytes()).into_owned().collect())
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Refuses at once a body whose declared length is over the limit.
fn check_declared_length<B>(req: &Request<B>, limit: u64) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit => Err(ApiError::PayloadTooLarge(limit)),
        _ => Ok(()),
    }
}

/// Reads the whole body, refusing it as soon as it passes `limit`.
async fn read_body<B: RequestBody>(req: Request<B>, limit: u64) -> Result<Bytes, ApiError> {
    check_declared_length(&req, limit)?;
    let limited = Limited::new(req.into_body(), limit as usize);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::PayloadTooLarge(limit))
        }
        Err(e) => Err(ApiError::BadRequest(format!(
            "Cannot read the request body: {e}"
        ))),
    }
}

async fn read_multipart<B: RequestBody>(
    body: B,
    boundary: String,
    q: Query,
    limit: u64,
) -> Result<(Bytes, Params), ApiError> {
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit));
    let stream = body.into_data_stream();
    let mut form = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut image = None;
    let mut fields: Vec<(String, String)> = Vec::new();
    let multipart_error = |e: multer::Error| match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            ApiError::PayloadTooLarge(limit)
        }
        other => ApiError::BadRequest(format!("Malformed multipart body: {other}")),
    };
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "image" => image = Some(field.bytes().await.map_err(multipart_error)?),
            "x" | "y" | "models" | "top" => {
                let text = field.text().await.map_err(multipart_error)?;
                fields.push((name, text));
            }
            _ => {
                // Unknown fields are drained and ignored, as HTML forms send extras.
                field.bytes().await.map_err(multipart_error)?;
            }
        }
    }
    let image = image
        .ok_or_else(|| ApiError::BadRequest("The form has no file field named image".into()))?;
    let field = |k: &str| {
        fields
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .or_else(|| q.get(k))
    };
    let params = Params::from_text(field("x"), field("y"), field("models"), field("top"))?;
    Ok((image, params))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathRequest {
    path: String,
    x: Option<f64>,
    y: Option<f64>,
    models: Option<Vec<String>>,
    top: Option<usize>,
}

async fn read_json_path(
    config: &Config,
    body: &[u8],
    q: &Query,
) -> Result<(Bytes, Params), ApiError> {
    let req: PathRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("Malformed JSON body: {e}")))?;
    let from_query = |k: &str| q.get(k).and_then(|v| v.parse::<f64>().ok());
    let x = req
        .x
        .or_else(|| from_query("x"))
        .ok_or_else(|| ApiError::BadRequest("Missing parameter x".into()))?;
    let y = req
        .y
        .or_else(|| from_query("y"))
        .ok_or_else(|| ApiError::BadRequest("Missing parameter y".into()))?;
    let models = req.models.or_else(|| {
        q.get("models")
            .map(|m| m.split(',').map(str::to_string).collect())
    });
    let top = match req.top {
        Some(t) => t,
        None => q
            .get("top")
            .map(|t| t.parse::<usize>().unwrap_or(0))
            .unwrap_or(5),
    };
    let params = Params::checked(x, y, models, top)?;
    let roots = config.server.image_roots.clone();
    let limit = config.server.max_body_bytes;
    let path = req.path;
    let bytes =
        tokio::task::spawn_blocking(move || crate::paths::read_under_roots(&roots, &path, limit))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok((Bytes::from(bytes), params))
}

impl From<FeedbackError> for ApiError {
    fn from(e: FeedbackError) -> Self {
        match e {
            FeedbackError::UnknownPrediction(_) | FeedbackError::UnknownModel { .. } => {
                ApiError::NotFound(e.to_string())
            }
            FeedbackError::UnknownLabel { .. } => ApiError::BadRequest(e.to_string()),
            FeedbackError::Log { .. } => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<crate::paths::PathError> for ApiError {
    fn from(e: crate::paths::PathError) -> Self {
        use crate::paths::PathError::*;
        match e {
            Disabled | Outside(_) | NotRegular(_) => ApiError::Forbidden(e.to_string()),
            Missing(_) => ApiError::NotFound(e.to_string()),
            TooLarge(limit) => ApiError::PayloadTooLarge(limit),
            Relative(_) => ApiError::BadRequest(e.to_string()),
            Io(_) => ApiError::Forbidden(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_methods() {
        assert_eq!(route(&Method::POST, "/v1/predict").unwrap(), Route::Predict);
        assert_eq!(route(&Method::HEAD, "/healthz").unwrap(), Route::Healthz);
        assert!(matches!(
            route(&Method::GET, "/v1/predict"),
            Err(ApiError::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            route(&Method::GET, "/nope"),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn every_error_has_its_status() {
        let e: ApiError = ImageError::UnsupportedFormat.into();
        assert_eq!(
            e.status_and_code(),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        );
        let e: ApiError = ImageError::Empty.into();
        assert_eq!(
            e.status_and_code(),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_image")
        );
        let e: ApiError = PredictError::UnknownModel("x".into()).into();
        assert_eq!(e.status_and_code().0, StatusCode::NOT_FOUND);
        let resp = ApiError::RateLimited(Duration::from_millis(2100)).into_response();
        assert_eq!(resp.headers()["retry-after"], "3");
        let resp = ApiError::RateLimited(Duration::from_millis(40)).into_response();
        assert_eq!(resp.headers()["retry-after"], "1");
    }
}
