//! predictd serves TensorFlow frozen-graph image classifiers to programs on
//! the same machine, over HTTP on a Unix socket.
//!
//! # A tour of the modules
//!
//! Dependencies run one way: `cli` -> `server` -> `api` -> `predict` ->
//! `source` / `models` -> `imaging`. Only `models` (and `fold`) know tract; nothing
//! below `api` knows HTTP.
//!
//! - [`cli`]: the command line (`serve`, `check`, `config`, `predict`,
//!   `bench`, `health`) and the one mapping from errors to exit codes.
//! - [`config`]: the TOML file, parsed and validated into typed values.
//! - [`daemon`]: fork, the pidfile (removed by its guard's `Drop`), and the
//!   pipe that tells the waiting parent "ready" or the exit code it failed
//!   with.
//! - [`signals`]: SIGHUP asks the loader for a reload, SIGTERM/SIGINT stop,
//!   on one thread.
//! - [`logging`]: stderr in the foreground, syslog when daemonized (stderr
//!   if syslog cannot be reached), written by a thread of its own from a
//!   bounded queue, so that a log that cannot be written never holds a
//!   request (the line is dropped and counted).
//! - [`memory`]: the allocator's own books (jemalloc, set in `main.rs`).
//! - [`server`]: binds the socket (removed by its guard's `Drop`), accepts
//!   connections with the peer's credentials within `max-connections`,
//!   serves HTTP/1.1 with hyper, drains on shutdown.
//! - [`state`]: what is served -- config and models as one value swapped
//!   whole -- and the loader thread, its only owner: the start-up load and
//!   every reload are messages to it.
//! - [`api`]: the route table, one handler per route, and one record per
//!   request (in flight until dropped, then one metric sample and one log
//!   line, 499 if the client left).
//! - [`peer`]: who is calling (uid, address, or the client a trusted proxy
//!   names), who may use which route, and the per-caller limits.
//! - [`input`]: the request body within its limit, and one parser for the
//!   prediction parameters of the query string, form fields and JSON.
//! - [`error`]: every refusal and failure, and the one mapping to status,
//!   code and JSON.
//! - [`paths`]: reading images named by path, only under `image-roots`.
//! - [`ratelimit`]: per-caller token buckets and connection counts.
//! - [`feedback`]: recent predictions, what users chose, hit rates, the log.
//! - [`metrics`]: the Prometheus registry behind `GET /metrics`, recorded
//!   through its methods.
//! - [`predict`]: one prediction, shared by the API and `predictd predict`.
//! - [`source`]: an upload opened from its header, and the parts of it each
//!   model's window needs (a JPEG plane at DCT scale or a full-size
//!   rectangle, through the workspace crate `jpeg-parts`).
//! - [`imaging`]: sniff, size-check, whole decode (other formats), orient,
//!   crop, resize.
//! - [`cache`]: what was decoded of a photo, kept for the next click on it.
//! - [`models`]: the registry of tract plans and their worker threads.
//! - [`tf_import`]: what TensorFlow 1.x and 2.x write, made readable by
//!   tract (cut, prune, old spellings, missing ops), and the list of
//!   unsupported ops; [`onnx_import`]: `.onnx` models.
//! - [`inspect`]: `predictd inspect`, a graph's inputs, outputs, ops and a
//!   ready `[[model]]` section.
//! - [`fold`]: the graph rewrites applied to every loaded graph.
//! - [`fused`]: the depthwise convolution with its ReLU6 in one pass, and
//!   the 1x1 convolution with its bias and ReLU6 on the kernel of the
//!   workspace crate `x86-pointwise`.
//! - [`client`]: the client for applications (async and blocking): a
//!   deadline per call, errors as values, a circuit breaker; the workspace
//!   crate `predictd-client`, which applications use without the daemon's
//!   dependencies; also used by `predict --socket`, `bench` and `health`.
//! - [`bench`]: `predictd bench`'s load and its percentiles.
//! - [`fuzzing`]: the fuzz targets' bodies (cargo-fuzz and the stable
//!   harness of `tests/fuzz.rs` call them).
//!
//! # The path of one request
//!
//! `server` accepts a connection on the socket, reads the peer's uid with
//! `SO_PEERCRED` and takes a place among `max-connections` ([`peer::admit`]).
//! hyper parses the request and calls [`api::handle`], which opens the
//! request's record, starts its timeout, picks the route from method and
//! path, checks the caller ([`peer::authorize`], [`peer::rate_limit`]), and
//! for `POST /v1/predict` reads the image and parameters
//! ([`input::read_predict_input`]: raw body, multipart form or JSON path)
//! within the body limit, against one snapshot of config and models
//! ([`state::State::served`]). [`predict::predict`] resolves the model
//! names, opens the image on a blocking thread ([`source::Source::open`]:
//! format from the bytes, pixel count from the header before any pixel is
//! allocated, EXIF orientation; only other formats than JPEG are decoded
//! there, whole, by [`imaging::decode`]), checks the point, decodes what
//! each model's window needs of a JPEG side by side (a plane at DCT scale,
//! or a rectangle at full size: [`source`], with libjpeg-turbo through the
//! workspace crate `jpeg-parts`), keeps it in the [`cache`] for the next
//! click, then queues one job per model at the same time. Each model's worker thread ([`models`]) crops
//! its window, resizes it, runs its tract plan and replies on the job's
//! own channel; a full queue is a 503 at once. The answers are gathered
//! into the JSON of the SPEC ([`error`] maps any failure), and the
//! request's record counts and logs it with its duration.

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
