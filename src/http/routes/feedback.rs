//! `POST /v1/feedback` (what the user finally chose) and `GET /v1/stats`
//! (hit rates from those choices).

use crate::http::error::{json_response, ApiError, Body};
use crate::http::input::read_body;
use crate::service::state::State;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use std::sync::Arc;

/// The largest feedback body read.
const MAX_FEEDBACK_BYTES: u64 = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackRequest {
    id: String,
    model: String,
    chosen: String,
}

pub async fn feedback(
    state: &Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let body = read_body(req, MAX_FEEDBACK_BYTES).await?;
    let fb: FeedbackRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("Malformed feedback JSON: {e}")))?;
    let st = state.clone();
    let model = fb.model.clone();
    // Written durably (synced) before the answer: off the async runtime.
    tokio::task::spawn_blocking(move || st.feedback.submit(&fb.id, &fb.model, &fb.chosen))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    state.metrics.feedback(&model);
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}

pub fn stats(state: &State) -> Response<Body> {
    json_response(StatusCode::OK, &state.feedback.report())
}
