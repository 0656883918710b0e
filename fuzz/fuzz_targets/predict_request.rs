//! Feeds arbitrary `POST /v1/predict` requests through the daemon's own
//! parser (`api::read_predict_input`: raw body, multipart, JSON path), then
//! decodes whatever image it accepts. Errors are expected; panics, hangs
//! and huge allocations are the bugs.
//!
//! Input layout: byte 0 picks the content type, byte 1 whether a
//! Content-Length is sent; then the query string up to the first newline,
//! (for the fuzzed content type, the header value up to the next newline),
//! then the body.
#![no_main]

use bytes::Bytes;
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use predictd::config::Config;
use predictd::paths::ImageRoots;
use std::sync::Arc;
use std::sync::OnceLock;

struct World {
    runtime: tokio::runtime::Runtime,
    config: Config,
    roots: Arc<ImageRoots>,
}

/// A fixed folder, so seeds can name files in it.
const ROOT: &str = "/tmp/predictd-fuzz-root";

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let root = std::path::Path::new(ROOT);
        std::fs::create_dir_all(root).unwrap();
        // A 2x2 PNG, a link to it, and a link out of the root.
        let png = include_bytes!("../seeds/image_header/tiny.png");
        std::fs::write(root.join("a.png"), png).unwrap();
        let _ = std::os::unix::fs::symlink(root.join("a.png"), root.join("b.png"));
        let _ = std::os::unix::fs::symlink("/etc/passwd", root.join("c.png"));
        let mut config = Config::default();
        config.server.image_roots = vec![root.canonicalize().unwrap()];
        config.server.max_body_bytes = 1 << 20;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let roots = Arc::new(ImageRoots::open(&config.server.image_roots));
        World {
            runtime,
            config,
            roots,
        }
    })
}

fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let w = world();
    let (selector, with_length) = (data[0], data[1] & 1 == 1);
    let (query, rest) = split_line(&data[2..]);
    let (content_type, body): (Vec<u8>, &[u8]) = match selector % 6 {
        0 => (b"image/jpeg".to_vec(), rest),
        1 => (b"application/octet-stream".to_vec(), rest),
        2 => (b"multipart/form-data; boundary=XYZ".to_vec(), rest),
        3 => (b"application/json".to_vec(), rest),
        4 => {
            let (boundary, body) = split_line(rest);
            let mut ct = b"multipart/form-data; boundary=".to_vec();
            ct.extend_from_slice(boundary);
            (ct, body)
        }
        _ => {
            let (ct, body) = split_line(rest);
            (ct.to_vec(), body)
        }
    };
    let mut uri = b"/v1/predict?".to_vec();
    uri.extend(query.iter().filter(|b| b.is_ascii_graphic()));
    let mut builder = hyper::Request::builder().method("POST").uri(uri.as_slice());
    if let Ok(v) = hyper::header::HeaderValue::from_bytes(&content_type) {
        builder = builder.header(hyper::header::CONTENT_TYPE, v);
    }
    if with_length {
        builder = builder.header(hyper::header::CONTENT_LENGTH, body.len());
    }
    let Ok(req) = builder.body(Full::new(Bytes::copy_from_slice(body))) else {
        return;
    };
    let parsed = w
        .runtime
        .block_on(predictd::api::read_predict_input(&w.config, &w.roots, req));
    if let Ok((bytes, _params)) = parsed {
        let _ = predictd::imaging::decode(&bytes, 1 << 20);
    }
});
