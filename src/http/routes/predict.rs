//! `POST /v1/predict`: the image and the point, read within the limits;
//! the prediction; its metrics and log line; the offers kept for feedback.

use crate::http::error::{json_response, ApiError, Body};
use crate::http::input::read_predict_input;
use crate::http::peer::Peer;
use crate::inference::ModelError;
use crate::service::predict::{self, PredictError, Prediction};
use crate::service::state::State;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

pub async fn predict(
    state: &State,
    peer: Peer,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    // Config and models of the same snapshot, whatever a reload swaps in
    // meanwhile.
    let served = state.served();
    let registry = served.registry.clone().ok_or(ApiError::NotReady)?;
    let config = &served.config;
    let (bytes, params) = read_predict_input(config, &served.roots, req).await?;
    let mut prediction = predict::predict(
        registry,
        bytes,
        &params,
        config.server.max_pixels,
        Some(&state.decode_budget),
        Some(&state.image_cache),
    )
    .await
    .inspect_err(|e| {
        if let PredictError::Model(ModelError::Overloaded(model)) = e {
            state.metrics.queue_rejected(model);
        }
    })?;
    observe(state, &peer, &prediction);
    let offers = std::mem::take(&mut prediction.offers);
    state.feedback.record_prediction(&prediction.id, offers);
    Ok(json_response(StatusCode::OK, &prediction))
}

/// Metrics and the log line of one served prediction.
fn observe(state: &State, peer: &Peer, p: &Prediction) {
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
