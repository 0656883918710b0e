//! What the daemon says about itself: `GET /metrics`, `GET /v1/models`,
//! `GET /healthz`, `GET /readyz`.

use crate::http::error::{json_response, ApiError, Body};
use crate::service::state::State;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

pub fn metrics(state: &State) -> Response<Body> {
    refresh_gauges(state);
    let mut resp = Response::new(Full::new(Bytes::from(state.metrics.encode())));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

/// Sets the gauges that describe the present: queue depths, the decoding
/// budget and the image cache, feedback hit rates.
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

pub fn models(state: &State) -> Result<Response<Body>, ApiError> {
    let registry = state.registry().ok_or(ApiError::NotReady)?;
    let models: Vec<_> = registry.models.iter().map(|m| &m.info).collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({"models": models}),
    ))
}

pub fn healthz() -> Response<Body> {
    json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

pub fn readyz(state: &State) -> Result<Response<Body>, ApiError> {
    state.registry().ok_or(ApiError::NotReady)?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({"status": "ready"}),
    ))
}
