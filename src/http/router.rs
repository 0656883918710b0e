//! HTTP routes: one table turns a request into a typed action; a handler
//! per route; one record per request (metrics and the log line).
//!
//! Who may call is [`crate::http::peer`]'s, reading the input
//! [`crate::http::input`]'s, the error mapping [`crate::http::error`]'s, and what is
//! served [`crate::service::state`]'s: nothing here knows tract.

pub use crate::http::error::{json_response, ApiError, Body};
use crate::http::input::drain_small_body;
use crate::http::input::read_body;
pub use crate::http::input::{read_predict_input, RequestBody};
pub use crate::http::peer::Peer;
use crate::http::peer::{authorize, rate_limit, Access};
use crate::inference::ModelError;
use crate::service::predict::{self, PredictError};
pub use crate::service::state::State;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

impl Route {
    fn access(self) -> Access {
        match self {
            Route::Page => Access::Page,
            Route::Reload => Access::Admin,
            _ => Access::Service,
        }
    }
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
    let path = req.uri().path().to_string();
    // Counted in flight, and logged, however the request ends: hyper drops
    // this future when the client hangs up, and the guard's Drop then
    // records the request as closed by the client.
    let mut record = RequestRecord::begin(state.clone(), peer, req.method().clone(), path.clone());
    // A reload answers when the new models are checked, which may take
    // longer than a prediction is allowed to.
    let timeout_ms = match path.as_str() {
        "/v1/reload" => 600_000,
        _ => state.config().server.request_timeout_ms,
    };
    let outcome = tokio::time::timeout(
        Duration::from_millis(timeout_ms),
        dispatch(&state, peer, req),
    )
    .await;
    let mut resp = match outcome {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => e.into_response(),
        Err(_) => ApiError::Timeout(timeout_ms).into_response(),
    };
    secure_headers(resp.headers_mut());
    record.finish(resp.status().as_u16());
    Ok(resp)
}

/// Sent with every answer: nothing from outside sources runs in the page
/// (its script and style are inline; it reads only this origin and the
/// images picked by the user), and no answer is sniffed into another type.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; img-src 'self' blob: data:; connect-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn secure_headers(headers: &mut hyper::HeaderMap) {
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
}

/// The status logged and counted for a request whose client went away
/// before its answer (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

/// One request's bookkeeping: in flight from `begin` until dropped, then
/// one metric sample and one log line with its status, or 499 when it
/// never finished because the client closed the connection.
struct RequestRecord {
    state: Arc<State>,
    seq: u64,
    peer: Peer,
    method: Method,
    path: String,
    started: Instant,
    status: Option<u16>,
}

impl RequestRecord {
    fn begin(state: Arc<State>, peer: Peer, method: Method, path: String) -> RequestRecord {
        state.metrics.in_flight.inc();
        RequestRecord {
            seq: REQUEST_SEQ.fetch_add(1, Ordering::Relaxed),
            state,
            peer,
            method,
            path,
            started: Instant::now(),
            status: None,
        }
    }

    fn finish(&mut self, status: u16) {
        self.status = Some(status);
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        let state = &self.state;
        state.metrics.in_flight.dec();
        let status = self.status.unwrap_or(CLIENT_CLOSED);
        let elapsed = self.started.elapsed();
        // Unknown paths share one label, so scanners cannot grow the metrics.
        let path = &self.path;
        let route_label = match route(&Method::GET, path).or_else(|_| route(&Method::POST, path)) {
            Ok(_) => path.clone(),
            Err(_) => "other".to_string(),
        };
        state
            .metrics
            .request(&route_label, status, elapsed.as_secs_f64());
        let closed = if self.status.is_none() {
            " (client closed the connection)"
        } else {
            ""
        };
        log::info!(
            "request: seq={} {} method={} route={path} status={status} ms={:.2}{closed}",
            self.seq,
            self.peer,
            self.method,
            elapsed.as_secs_f64() * 1000.0
        );
    }
}

async fn dispatch(
    state: &Arc<State>,
    peer: Peer,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let admitted = route(req.method(), req.uri().path()).and_then(|route| {
        authorize(state, &peer, &req, route.access())?;
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
                let timeout = Duration::from_millis(state.config().server.request_timeout_ms);
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
            state.metrics.feedback(&model);
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
        Route::Readyz => match state.registry() {
            Some(_) => Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"status": "ready"}),
            )),
            None => Err(ApiError::NotReady),
        },
        Route::Models => {
            let registry = state.registry().ok_or(ApiError::NotReady)?;
            let models: Vec<_> = registry.models.iter().map(|m| &m.info).collect();
            Ok(json_response(
                StatusCode::OK,
                &serde_json::json!({"models": models}),
            ))
        }
        Route::Reload => match state.reload().await {
            Ok(report) => Ok(json_response(StatusCode::OK, &report)),
            Err(e) => Err(ApiError::Internal(format!(
                "Reload failed, still serving the old models: {e}"
            ))),
        },
        Route::Predict => {
            // Config and models of the same snapshot, whatever a reload
            // swaps in meanwhile.
            let served = state.served();
            let registry = served.registry.clone().ok_or(ApiError::NotReady)?;
            let config = &served.config;
            let (bytes, params) = read_predict_input(config, &served.roots, req).await?;
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
                        state.metrics.queue_rejected(model);
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
        m.inference(name, t(name) / 1000.0);
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
    if let Some(registry) = state.registry() {
        for model in &registry.models {
            m.queue_depth(&model.info.name, model.queue_depth());
        }
    }
    for (name, report) in state.feedback.report().models {
        for (rank, rate) in [("top1", report.rates.top1), ("top5", report.rates.top5)] {
            if let Some(rate) = rate {
                m.hit_ratio(&name, rank, rate);
            }
        }
    }
}

/// The longest a 429 is held back (see `dispatch`).
const MAX_RATE_LIMIT_PACE: Duration = Duration::from_secs(1);

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
}
