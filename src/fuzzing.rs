//! The fuzz targets' bodies, in the library so that every fuzzer drives the
//! daemon's own code: cargo-fuzz's targets (`fuzz/`, libFuzzer, nightly)
//! and the stable harness in `tests/fuzz.rs` (run by CI) call these.
//! Errors are expected; panics, hangs and huge allocations are the bugs.
//!
//! [`predict_request`]'s input layout: byte 0 picks the content type, byte
//! 1 whether a Content-Length is sent; then the query string up to the
//! first newline (for the fuzzed content type, the header value up to the
//! next newline), then the body. JSON `path` requests may read
//! `/tmp/predictd-fuzz-root`, which holds a PNG, a link to it and a link
//! out of it.

use crate::config::Config;
use crate::image as imaging;
use crate::image::source::{Need, Source};
use crate::service::paths::ImageRoots;
use bytes::Bytes;
use http_body_util::Full;
use std::sync::{Arc, OnceLock};

/// A 2x2 PNG, for the files path requests may read.
const TINY_PNG: &[u8] = include_bytes!("../fuzz/seeds/image_header/tiny.png");

/// `data` as an upload: sniffed, its header read, decoded with a
/// 1-megapixel limit (nothing larger may come out), opened as a source and
/// read by parts (a rectangle, with and without reading on; a plane at
/// each DCT scale), each with its size checked.
pub fn image_header(data: &[u8]) {
    let jpeg = imaging::sniff(data).ok() == Some(image::ImageFormat::Jpeg);
    let _ = imaging::header_dimensions(data);
    if let Ok(decoded) = imaging::decode(data, 1 << 20) {
        assert!(u64::from(decoded.width()) * u64::from(decoded.height()) <= 1 << 20);
    }
    let Ok(source) = Source::open(bytes::Bytes::copy_from_slice(data), 1 << 20) else {
        return;
    };
    let (w, h) = (source.width, source.height);
    let (x, y) = (w / 2, h / 3);
    let (x0, y0, x1, y1) = (
        x.saturating_sub(4),
        y.saturating_sub(4),
        (x + 5).min(w),
        (y + 5).min(h),
    );
    for check_rest in [false, true] {
        if let Ok(view) = source.view(Need::Rect(x0, y0, x1, y1), check_rest, 1 << 20) {
            // A JPEG's rectangle is decoded alone; other formats are
            // decoded whole, and their view is the whole image. Either way
            // the view holds the rectangle and nothing outside the image.
            let (vw, vh) = view.image.dimensions();
            let (ox, oy) = view.origin;
            if jpeg {
                assert_eq!(
                    (ox, oy, vw, vh),
                    (i64::from(x0), i64::from(y0), x1 - x0, y1 - y0)
                );
            } else {
                assert_eq!((ox, oy, vw, vh), (0, 0, w, h));
            }
        }
    }
    for scale in [8, 4, 2, 1] {
        if let Ok(view) = source.view(Need::Plane(scale), false, 1 << 20) {
            // A JPEG at the scale asked for; other formats whole, at 1.
            assert_eq!(view.scale, if jpeg { scale } else { 1 });
            let want = (w.div_ceil(view.scale), h.div_ceil(view.scale));
            assert_eq!(view.image.dimensions(), want);
        }
    }
}

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
        let png = TINY_PNG;
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

/// One `POST /v1/predict` request made of `data` (layout in the module doc),
/// through the daemon's parser, then a decode of the image it accepts.
pub fn predict_request(data: &[u8]) {
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
    let parsed = w.runtime.block_on(crate::http::input::read_predict_input(
        &w.config, &w.roots, req,
    ));
    if let Ok((bytes, _params)) = parsed {
        let _ = crate::image::decode(&bytes, 1 << 20);
    }
}
