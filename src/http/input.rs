//! Reading a request's input: the body within its limit, and the
//! prediction parameters from wherever they come (query string, multipart
//! fields, JSON), parsed by one parser.

use crate::config::Config;
use crate::http::error::ApiError;
use crate::service::paths::ImageRoots;
use crate::service::predict::Params;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::Request;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

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

/// Reads and drops a small body before a refusal (404, 405, 401, 403,
/// 429): closing the connection with the upload unread would reset it,
/// and the client would see a broken connection instead of the answer.
/// Large bodies are not worth reading for a refusal; a client that sends
/// `Expect: 100-continue` never sends them.
pub async fn drain_small_body<B: RequestBody>(req: Request<B>) {
    const MAX: u64 = 1 << 20;
    if declared_length(&req).is_some_and(|n| n > MAX) {
        return;
    }
    let body = Limited::new(req.into_body(), MAX as usize);
    let _ = tokio::time::timeout(Duration::from_millis(250), body.collect()).await;
}

/// The three ways an image arrives: raw body, multipart form, JSON path.
/// Public so the fuzz targets drive the exact code the daemon runs.
pub async fn read_predict_input<B: RequestBody>(
    config: &Config,
    roots: &Arc<ImageRoots>,
    req: Request<B>,
) -> Result<(Bytes, Params), ApiError> {
    let query = req.uri().query().unwrap_or("").to_string();
    let q = Fields::query(&query)?;
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
        return read_json_path(config, roots, &body, &q).await;
    }
    // Anything else is the image itself, whatever it is labelled (curl's
    // --data-binary says x-www-form-urlencoded): its bytes decide.
    // The body first: a client still sending when the answer comes would
    // see its connection reset instead of the 400.
    let body = read_body(req, limit).await?;
    let params = Fields::default().params(&q)?;
    Ok((body, params))
}

/// The prediction parameters.
const PARAMETERS: [&str; 4] = ["x", "y", "models", "top"];

/// Prediction parameters as text, from one place (the query string, the
/// form's fields, the JSON body). Every way in goes through
/// [`Fields::params`], so they are checked and reported the same way.
#[derive(Debug, Default)]
struct Fields(Vec<(String, String)>);

impl Fields {
    fn query(q: &str) -> Result<Fields, ApiError> {
        let mut f = Fields::default();
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            f.add(&k, v.into_owned(), "in the query string")?;
        }
        Ok(f)
    }

    /// Adds a parameter; one given twice in the same place is refused
    /// rather than silently resolved. Other names are ignored.
    fn add(&mut self, name: &str, value: String, place: &str) -> Result<(), ApiError> {
        if !PARAMETERS.contains(&name) {
            return Ok(());
        }
        if self.get(name).is_some() {
            return Err(ApiError::BadRequest(format!(
                "Parameter {name} is given more than once {place}"
            )));
        }
        self.0.push((name.to_string(), value));
        Ok(())
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The parameters of the body where it has them, else the query's.
    fn params(&self, query: &Fields) -> Result<Params, ApiError> {
        let get = |k: &str| self.get(k).or_else(|| query.get(k));
        Ok(Params::from_text(
            get("x"),
            get("y"),
            get("models"),
            get("top"),
        )?)
    }
}

/// The body's length as its `Content-Length` declares it, if it does.
fn declared_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Refuses at once a body whose declared length is over the limit.
fn check_declared_length<B>(req: &Request<B>, limit: u64) -> Result<(), ApiError> {
    match declared_length(req) {
        Some(n) if n > limit => Err(ApiError::PayloadTooLarge(limit)),
        _ => Ok(()),
    }
}

/// Reads the whole body, refusing it as soon as it passes `limit`.
pub async fn read_body<B: RequestBody>(req: Request<B>, limit: u64) -> Result<Bytes, ApiError> {
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
    q: Fields,
    limit: u64,
) -> Result<(Bytes, Params), ApiError> {
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit));
    let stream = body.into_data_stream();
    let mut form = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut image = None;
    let mut fields = Fields::default();
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
            name if PARAMETERS.contains(&name) => {
                let text = field.text().await.map_err(multipart_error)?;
                fields.add(name, text, "in the form")?;
            }
            _ => {
                // Unknown fields are drained and ignored, as HTML forms send extras.
                field.bytes().await.map_err(multipart_error)?;
            }
        }
    }
    let image = image
        .ok_or_else(|| ApiError::BadRequest("The form has no file field named image".into()))?;
    Ok((image, fields.params(&q)?))
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
    roots: &Arc<ImageRoots>,
    body: &[u8],
    q: &Fields,
) -> Result<(Bytes, Params), ApiError> {
    let req: PathRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("Malformed JSON body: {e}")))?;
    let mut fields = Fields::default();
    let place = "in the JSON body";
    if let Some(x) = req.x {
        fields.add("x", x.to_string(), place)?;
    }
    if let Some(y) = req.y {
        fields.add("y", y.to_string(), place)?;
    }
    if let Some(models) = req.models {
        if models.iter().any(|m| m.contains(',')) {
            return Err(ApiError::BadRequest("A model name has no comma".into()));
        }
        fields.add("models", models.join(","), place)?;
    }
    if let Some(top) = req.top {
        fields.add("top", top.to_string(), place)?;
    }
    let params = fields.params(q)?;
    let roots = roots.clone();
    let limit = config.server.max_body_bytes;
    let path = req.path;
    let bytes = tokio::task::spawn_blocking(move || roots.read(&path, limit))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok((Bytes::from(bytes), params))
}
