//! One prediction: decode the image once, send it to every requested model
//! at the same time, gather the answers.
//!
//! Both `POST /v1/predict` and `predictd predict --config` run this, so the
//! command line exercises exactly the path the daemon serves.

use crate::image::cache::{ImageCache, Key};
use crate::image::source::{Need, Source, View};
use crate::image::{self as imaging, ImageError, Window};
use crate::inference::{top_labels, Inference, Model, ModelError, Registry};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;

/// Most labels a caller may ask for per model.
pub const MAX_TOP: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// A parameter is missing or malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A requested model is not configured.
    #[error("Unknown model {0:?}")]
    UnknownModel(String),
    /// The point is not inside the image as displayed.
    #[error("Point ({x}, {y}) is outside the {width}x{height} image")]
    PointOutOfBounds {
        x: f64,
        y: f64,
        width: u32,
        height: u32,
    },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A bug: a task died (a panic in the decoder, say).
    #[error("{0}")]
    Internal(String),
}

/// What the caller asks, already parsed from whichever input mode it used.
#[derive(Debug, Clone)]
pub struct Params {
    pub x: f64,
    pub y: f64,
    /// `None`: every model, in config order.
    pub models: Option<Vec<String>>,
    pub top: usize,
}

impl Params {
    /// Builds parameters from text values (query string or form fields).
    pub fn from_text(
        x: Option<&str>,
        y: Option<&str>,
        models: Option<&str>,
        top: Option<&str>,
    ) -> Result<Params, PredictError> {
        let coord = |name: &str, v: Option<&str>| -> Result<f64, PredictError> {
            let v =
                v.ok_or_else(|| PredictError::BadRequest(format!("Missing parameter {name}")))?;
            match v.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(n),
                _ => Err(PredictError::BadRequest(format!(
                    "Parameter {name}={v:?} is not a number"
                ))),
            }
        };
        let top = match top {
            None => 5,
            Some(t) => parse_top(t.trim().parse::<i64>().ok())?,
        };
        let models = models.map(|m| {
            m.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        });
        Params::checked(coord("x", x)?, coord("y", y)?, models, top)
    }

    /// Validates already-typed values (the JSON mode).
    pub fn checked(
        x: f64,
        y: f64,
        models: Option<Vec<String>>,
        top: usize,
    ) -> Result<Params, PredictError> {
        if !x.is_finite() || !y.is_finite() {
            return Err(PredictError::BadRequest("x and y must be numbers".into()));
        }
        if let Some(m) = &models {
            if m.is_empty() {
                return Err(PredictError::BadRequest(
                    "Parameter models names no model".into(),
                ));
            }
        }
        parse_top(Some(top as i64))?;
        Ok(Params { x, y, models, top })
    }
}

fn parse_top(top: Option<i64>) -> Result<usize, PredictError> {
    match top {
        Some(t) if t >= 1 && t as usize <= MAX_TOP => Ok(t as usize),
        _ => Err(PredictError::BadRequest(format!(
            "Parameter top must be a whole number from 1 to {MAX_TOP}"
        ))),
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Scored {
    pub label: String,
    pub probability: f32,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

/// The answer, shaped as the JSON body of `POST /v1/predict`.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub id: String,
    pub predictions: BTreeMap<String, Vec<Scored>>,
    /// Model name to version (`sha256:...`).
    pub models: BTreeMap<String, String>,
    pub image: Size,
    /// The point as used (pixels, after EXIF orientation).
    pub point: [u32; 2],
    /// The window each model saw.
    pub crops: BTreeMap<String, Window>,
    /// `decode`, one entry per model (crop, resize and inference), `total`.
    pub timing_ms: BTreeMap<String, f64>,
    /// What each model offered, kept for feedback bookkeeping, not sent.
    #[serde(skip)]
    pub offers: Vec<crate::service::feedback::Offer>,
    /// Whether the decoded image came from the cache (`None`: no cache).
    #[serde(skip)]
    pub cache_hit: Option<bool>,
}

/// Indices and probabilities of the `n` most probable outputs, best first.
fn top_indices(probabilities: &[f32], n: usize) -> Vec<(u32, f32)> {
    let mut order: Vec<u32> = (0..probabilities.len() as u32).collect();
    order.sort_by(|&a, &b| probabilities[b as usize].total_cmp(&probabilities[a as usize]));
    order
        .into_iter()
        .take(n)
        .map(|i| (i, probabilities[i as usize]))
        .collect()
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

/// Runs `f` on a blocking thread; a panic in it (a decoder's, say) is an
/// internal error with its reason.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PredictError> {
    tokio::task::spawn_blocking(f).await.map_err(died)
}

/// A blocking task that did not finish, as an internal error.
fn died(e: tokio::task::JoinError) -> PredictError {
    let reason = panic_reason(e);
    log::error!("decoder failed: {reason}");
    PredictError::Internal(format!("The decoder failed: {reason}"))
}

/// Opens the upload: the header of a JPEG, the whole image of other
/// formats (whose pixels are taken from `budget` first; the returned permit
/// holds them until the caller drops it, after the models are done).
async fn open_within(
    bytes: bytes::Bytes,
    max_pixels: u64,
    budget: Option<&imaging::PixelBudget>,
) -> Result<(Source, Option<OwnedSemaphorePermit>), PredictError> {
    let permit = match budget {
        Some(budget) if imaging::sniff(&bytes)? != image::ImageFormat::Jpeg => {
            let (_, w, h) = imaging::header_dimensions(&bytes)?;
            let pixels = u64::from(w) * u64::from(h);
            // an image over the limit is refused by `open`, holding nothing
            (pixels <= max_pixels).then_some(budget.acquire(pixels).await)
        }
        _ => None,
    };
    let source = blocking(move || Source::open(bytes, max_pixels)).await??;
    Ok((source, permit))
}

/// What a task that did not finish died of.
fn panic_reason(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return e.to_string();
    }
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .map_or("a panic".into(), |m| format!("panic: {m}"))
}

/// Runs one prediction on `bytes` with the models of `registry`: the
/// models chosen, the image opened (or found in the cache), the point
/// checked, what each model's window needs decoded side by side, every
/// model's job queued, and the answers gathered.
pub async fn predict(
    registry: Arc<Registry>,
    bytes: bytes::Bytes,
    params: &Params,
    max_pixels: u64,
    budget: Option<&imaging::PixelBudget>,
    cache: Option<&ImageCache>,
) -> Result<Prediction, PredictError> {
    let started = Instant::now();
    // Resolve the model names before spending time on decoding.
    let models = choose_models(&registry, params)?;
    let opened = open_or_cached(bytes, max_pixels, budget, cache).await?;
    let source = opened.source.clone();
    let (width, height) = (source.width, source.height);
    let (x, y) = point_inside(params, width, height)?;
    // What each model reads of the image.
    let needs: Vec<Need> = models
        .iter()
        .map(|m| source.need(&m.spec, imaging::window(m.spec.crop, width, height, x, y)))
        .collect();
    let views = decode_parts(&source, &needs, max_pixels, budget).await?;
    if let Some((c, k)) = opened.offer_to {
        if source.checked() {
            c.insert(k, source.clone(), source.held_bytes());
        }
    }
    let decode_time = started.elapsed();
    // Queue every model's job before awaiting any, so they run side by side.
    let mut pending = Vec::with_capacity(models.len());
    for (m, need) in models.iter().zip(&needs) {
        let view = views
            .iter()
            .find(|(n, _)| n == need)
            .map(|(_, v)| v.clone())
            .expect("every need was decoded");
        pending.push(m.submit(view, x, y)?);
    }
    let mut out = Prediction {
        id: uuid::Uuid::now_v7().to_string(),
        predictions: BTreeMap::new(),
        models: BTreeMap::new(),
        image: Size { width, height },
        point: [x, y],
        crops: BTreeMap::new(),
        timing_ms: BTreeMap::new(),
        offers: Vec::with_capacity(models.len()),
        cache_hit: opened.cache_hit,
    };
    out.timing_ms.insert("decode".into(), ms(decode_time));
    for (m, rx) in models.iter().zip(pending) {
        let inference = rx
            .await
            .map_err(|_| ModelError::Gone(m.info.name.clone()))??;
        add_answer(&mut out, m, &inference, params.top);
    }
    out.timing_ms.insert("total".into(), ms(started.elapsed()));
    Ok(out)
}

/// The models `params` names (each once, in the order named), or all.
fn choose_models(registry: &Registry, params: &Params) -> Result<Vec<Arc<Model>>, PredictError> {
    let Some(names) = &params.models else {
        return Ok(registry.models.clone());
    };
    let mut chosen: Vec<Arc<Model>> = Vec::new();
    for name in names {
        let m = registry
            .get(name)
            .ok_or_else(|| PredictError::UnknownModel(name.clone()))?;
        if !chosen.iter().any(|c| Arc::ptr_eq(c, m)) {
            chosen.push(m.clone());
        }
    }
    Ok(chosen)
}

/// An image opened for one prediction.
struct Opened<'a> {
    source: Arc<Source>,
    /// Whether the cache had it (`None`: no cache).
    cache_hit: Option<bool>,
    /// Where to put it back once decoded: a new image is offered to the
    /// cache, one from the cache is put back with what it holds now (the
    /// planes decoded for this click count in the cache's bound).
    offer_to: Option<(&'a ImageCache, Key)>,
    /// The pixels of a whole decode, held in the budget until the
    /// prediction is answered (the models read them).
    _pixels: Option<OwnedSemaphorePermit>,
}

/// The image opened from `bytes`, or what was decoded of the same upload
/// before (another click on the same photo) if the cache still has it.
async fn open_or_cached<'a>(
    bytes: bytes::Bytes,
    max_pixels: u64,
    budget: Option<&imaging::PixelBudget>,
    cache: Option<&'a ImageCache>,
) -> Result<Opened<'a>, PredictError> {
    let Some(cache) = cache.filter(|c| c.enabled()) else {
        let (source, pixels) = open_within(bytes, max_pixels, budget).await?;
        return Ok(Opened {
            source: Arc::new(source),
            cache_hit: None,
            offer_to: None,
            _pixels: pixels,
        });
    };
    let b = bytes.clone();
    let key = blocking(move || crate::image::cache::key(&b)).await?;
    let cached = cache
        .get(&key)
        .filter(|s| u64::from(s.width) * u64::from(s.height) <= max_pixels);
    if let Some(source) = cached {
        return Ok(Opened {
            source,
            cache_hit: Some(true),
            offer_to: Some((cache, key)),
            _pixels: None,
        });
    }
    let (source, pixels) = open_within(bytes, max_pixels, budget).await?;
    Ok(Opened {
        source: Arc::new(source),
        cache_hit: Some(false),
        offer_to: Some((cache, key)),
        _pixels: pixels,
    })
}

/// The point as pixel coordinates, if it lies inside the image.
fn point_inside(params: &Params, width: u32, height: u32) -> Result<(u32, u32), PredictError> {
    let inside = params.x >= 0.0
        && params.y >= 0.0
        && params.x < f64::from(width)
        && params.y < f64::from(height);
    if !inside {
        return Err(PredictError::PointOutOfBounds {
            x: params.x,
            y: params.y,
            width,
            height,
        });
    }
    Ok((params.x.floor() as u32, params.y.floor() as u32))
}

/// Decodes each different part the models need once, all of them side by
/// side, each within the pixel budget.
async fn decode_parts(
    source: &Arc<Source>,
    needs: &[Need],
    max_pixels: u64,
    budget: Option<&imaging::PixelBudget>,
) -> Result<Vec<(Need, View)>, PredictError> {
    let mut parts: Vec<Need> = Vec::with_capacity(needs.len());
    for n in needs {
        if !parts.contains(n) {
            parts.push(*n);
        }
    }
    // Without a plane to decode, a rectangle reads on to the end of the
    // file, so that an upload which does not decode is refused all the same.
    let check_rest = !needs.iter().any(|n| matches!(n, Need::Plane(_)));
    let mut decoding = Vec::with_capacity(parts.len());
    for need in parts.iter().copied() {
        let permit = match (budget, source.cost(need)) {
            (Some(b), pixels) if pixels > 0 => Some(b.acquire(pixels).await),
            _ => None,
        };
        let s = source.clone();
        // spawned now (not when awaited), so that the parts decode together
        decoding.push(tokio::task::spawn_blocking(move || {
            let view = s.view(need, check_rest, max_pixels);
            drop(permit);
            view
        }));
    }
    let mut views = Vec::with_capacity(parts.len());
    for (need, task) in parts.iter().zip(decoding) {
        views.push((*need, task.await.map_err(died)??));
    }
    Ok(views)
}

/// One model's answer into the prediction (its top labels, what feedback
/// needs, version, window, time), and its log line.
fn add_answer(out: &mut Prediction, m: &Model, inference: &Inference, top: usize) {
    let name = &m.info.name;
    log::info!(
        "inference: model={} version={} batch=1 queued_ms={:.2} preprocess_ms={:.2} ms={:.2}",
        name,
        m.info.version,
        ms(inference.queued),
        ms(inference.preprocess),
        ms(inference.elapsed)
    );
    let shown: Vec<Scored> = top_labels(&m.labels, &inference.probabilities, top)
        .into_iter()
        .map(|(label, probability)| Scored {
            label: label.to_string(),
            probability,
        })
        .collect();
    out.predictions.insert(name.clone(), shown);
    out.offers.push(crate::service::feedback::Offer {
        model: name.clone(),
        version: m.info.version.clone(),
        labels: m.labels.clone(),
        top: top_indices(&inference.probabilities, crate::service::feedback::OFFERED),
    });
    out.models.insert(name.clone(), m.info.version.clone());
    out.crops.insert(name.clone(), inference.window);
    out.timing_ms.insert(name.clone(), ms(inference.elapsed));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_decoder_is_an_internal_error_with_its_reason() {
        let died = tokio::task::spawn_blocking(|| -> u8 { panic!("bad huffman table") })
            .await
            .unwrap_err();
        let reason = panic_reason(died);
        assert_eq!(reason, "panic: bad huffman table");
    }
}
