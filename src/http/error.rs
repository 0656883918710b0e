//! Every refusal and failure of the HTTP API, and the one mapping from an
//! error to its status, code and JSON body (../shared/SPEC.md's table);
//! also the headers every answer carries. A connection refused before
//! hyper serves it gets the same answer, written by [`ApiError::into_http1`].

use crate::http::peer::ConnectionLimit;
use crate::image::ImageError;
use crate::inference::ModelError;
use crate::service::feedback::FeedbackError;
use crate::service::predict::PredictError;
use crate::service::state::ReloadError;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};
use std::time::Duration;

pub type Body = Full<Bytes>;

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
    /// A new connection past a connection limit (answered before hyper
    /// serves it, and the connection closed).
    #[error("{}", .0.message())]
    ConnectionsFull(ConnectionLimit),
    #[error("Models are not loaded yet")]
    NotReady,
    #[error("Request not answered within {0} ms")]
    Timeout(u64),
    #[error("Reload failed, still serving the old models: {0}")]
    ReloadFailed(#[from] ReloadError),
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
            Overloaded(_) | ConnectionsFull(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            ReloadFailed(_) | Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
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
            ApiError::Overloaded(_) | ApiError::ConnectionsFull(_) | ApiError::NotReady => {
                resp.headers_mut()
                    .insert("retry-after", HeaderValue::from(1));
            }
            _ => {}
        }
        resp
    }

    /// The answer as HTTP/1.1 bytes, with the headers of every answer and
    /// `connection: close`: for a connection refused before hyper serves it.
    pub fn into_http1(self) -> Vec<u8> {
        let mut resp = self.into_response();
        secure_headers(resp.headers_mut());
        let (parts, body) = resp.into_parts();
        let (status, body) = (parts.status, body.into_inner().unwrap_or_default());
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .into_bytes();
        for (name, value) in &parts.headers {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(
            format!(
                "content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&body);
        out
    }
}

/// Sent with every answer: nothing from outside sources runs in the page
/// (its script and style are inline; it reads only this origin and the
/// images picked by the user), and no answer is sniffed into another type.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; img-src 'self' blob: data:; connect-src 'self'; \
    base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Adds the headers every answer carries.
pub fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
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
            PredictError::Internal(m) => ApiError::Internal(m),
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

/// `Retry-After` in whole seconds, at least 1.
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
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

impl From<crate::service::paths::PathError> for ApiError {
    fn from(e: crate::service::paths::PathError) -> Self {
        use crate::service::paths::PathError::*;
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
        // A decoder that panicked (predict::panic_reason) is a 500.
        let e: ApiError = PredictError::Internal("panic: bad huffman table".into()).into();
        assert_eq!(
            e.status_and_code(),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
        let resp = ApiError::RateLimited(Duration::from_millis(2100)).into_response();
        assert_eq!(resp.headers()["retry-after"], "3");
        let resp = ApiError::RateLimited(Duration::from_millis(40)).into_response();
        assert_eq!(resp.headers()["retry-after"], "1");
    }
}
