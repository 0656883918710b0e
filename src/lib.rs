//! predictd serves TensorFlow frozen-graph image classifiers to programs on
//! the same machine, over HTTP on a Unix socket.
//!
//! # A tour of the modules
//!
//! The layers, each importing only those to its right:
//!
//! ```text
//! cli  ->  http  ->  service  ->  inference  ->  image  ->  config, daemon
//! ```
//!
//! Nothing below `http` knows HTTP; only `inference` knows tract; `image`
//! knows no model; `config` and `daemon` know nothing of predictd.
//!
//! - [`cli`]: the command line, one file per subcommand (`serve`, `check`,
//!   `inspect`, `config`, `predict`, `bench`, `health`), the one mapping
//!   from errors to exit codes (`cli/error.rs`), and `cli/serve.rs`, the
//!   composition root: config, fork, logging, socket, feedback store,
//!   served state and loader, signals, server.
//! - `http` (private): `server.rs` binds the socket (removed by its guard's
//!   `Drop`), accepts connections with the peer's credentials within the
//!   connection limits, serves HTTP/1.1 with hyper, drains on shutdown;
//!   `router.rs` decides the route once per request, checks the caller
//!   against it and keeps one record per request (in flight until dropped,
//!   then one metric sample and one log line, 499 if the client left);
//!   `routes/` holds one handler per route (page, predict, feedback and
//!   stats, status, reload); `input.rs` reads the body within its limit and
//!   parses the prediction parameters of query string, form or JSON;
//!   `error.rs` maps every refusal to status, code and JSON, the
//!   connection-level 503 included; `peer.rs` says who is calling and what
//!   they may use.
//! - `service` (private): `state.rs`, config and models as one value swapped
//!   whole, and the loader thread, its only owner (start-up load and every
//!   reload are messages to it); `predict.rs`, one prediction, shared by the
//!   API and `predictd predict`; `feedback/`, recent predictions, what users
//!   chose, hit rates, the log; `metrics.rs`; `ratelimit.rs`, per-caller
//!   token buckets and connection counts; `paths.rs`, reading images named
//!   by path only beneath `image-roots`.
//! - [`inference`]: `registry.rs`, the models of one config, loaded and
//!   self-tested, swapped whole; `worker.rs`, each model's threads and
//!   bounded queue; `load.rs`, a graph file to an optimized tract plan;
//!   `preprocess.rs`, a window's pixels to the model's input; `tf_import/`
//!   and `onnx_import.rs`, what TensorFlow 1.x/2.x and ONNX write made
//!   readable by tract; `inspect/`, `predictd inspect`; `rewrite/`, the
//!   graph passes applied to every loaded graph and the fused ops they put
//!   in (on the kernels of the workspace crates `x86-depthwise` and
//!   `x86-pointwise`).
//! - `image` (private): `sniff.rs` (format from the bytes, size from the
//!   header), `decode.rs` (whole decodes), `orient.rs` (EXIF), `window.rs`
//!   (the window around a point, the pixel budget), `source.rs` (an upload
//!   opened from its header, and the parts each window needs: a JPEG plane
//!   at DCT scale or a full-size rectangle, through the workspace crate
//!   `jpeg-parts`), `cache.rs` (what was decoded of a photo, for the next
//!   click).
//! - [`config`]: the TOML file, parsed and validated into typed values.
//! - [`daemon`]: fork, the pidfile and the pipe that tells the waiting
//!   parent "ready" or its exit code; signals (reload and stop are the
//!   caller's callbacks); logging to stderr or syslog from a bounded queue,
//!   so a log that cannot be written never holds a request (the line is
//!   dropped and counted); the allocator's own books (jemalloc, set in
//!   `main.rs`).
//! - [`client`]: the client for applications, the workspace crate
//!   `predictd-client` (no tract or image dependency).
//! - [`fuzzing`]: the fuzz targets' bodies (cargo-fuzz and the stable
//!   harness of `tests/fuzz.rs` call them).
//!
//! The public API is what the binary, the fuzz targets, the examples and
//! the tests use; `http`, `service` and `image` are private.
//!
//! # The path of one request
//!
//! `http::server` accepts a connection on the socket, reads the peer's uid
//! with `SO_PEERCRED` and takes a place within `max-connections` and
//! `max-connections-per-uid` (or answers 503 at once). hyper parses the
//! request and calls `http::router::handle`, which decides the route,
//! opens the request's record, starts its timeout, checks the caller
//! (`http::peer::authorize`, the rate limit) and calls the route's handler.
//! `POST /v1/predict` (`http::routes::predict`) reads the image and
//! parameters (raw body, multipart form or JSON path) within the body
//! limit, against one snapshot of config and models. `service::predict`
//! resolves the model names, opens the image on a blocking thread (format
//! from the bytes, pixel count from the header before any pixel is
//! allocated, EXIF orientation; other formats than JPEG are decoded there,
//! whole) or takes it from the cache, checks the point, decodes what each
//! model's window needs side by side (a JPEG plane at DCT scale, or a
//! rectangle at full size), keeps it in the cache for the next click, then
//! queues one job per model at the same time. Each model's worker thread
//! (`inference::worker`) makes its input (`inference::preprocess`), runs
//! its tract plan and replies on the job's own channel; a full queue is a
//! 503 at once. The answers are gathered into the JSON of the SPEC (any
//! failure is a typed error that `http::error` maps), and the request's
//! record counts and logs it with its duration.

#![forbid(unsafe_code)]

pub mod cli;
/// The client of applications, from the workspace crate `predictd-client`
/// (no tract or image dependency: an application builds it in seconds).
pub use predictd_client as client;
pub mod config;
pub mod daemon;
pub mod fuzzing;
mod http;
mod image;
pub mod inference;
mod service;
