//! `GET /`: the page where a person tries predictd by clicking on a photo.

use crate::http::error::Body;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;

/// The page: one self-contained file, no outside resources.
const PAGE: &str = include_str!("page.html");

pub fn page() -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}
