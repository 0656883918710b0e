//! predictd serves TensorFlow frozen-graph image classifiers to programs on
//! the same machine, over HTTP on a Unix socket.
//!
//! # A tour of the modules
//!
//! - [`cli`]: the command line (`serve`, `check`, `config`, `predict`,
//!   `bench`, `health`) and the one mapping from errors to exit codes.
//! - [`config`]: the TOML file, parsed and validated into typed values.
//! - [`daemon`]: fork, pidfile, and the pipe that tells the waiting parent
//!   the daemon is ready.
//! - [`signals`]: SIGHUP reloads, SIGTERM/SIGINT stop, on one thread.
//! - [`logging`]: stderr in the foreground, syslog when daemonized.
//! - [`server`]: binds the socket, accepts connections with the peer's
//!   credentials, serves HTTP/1.1, drains on shutdown.
//! - [`api`]: the route table, the handlers, the shared [`api::State`], the
//!   one mapping from errors to HTTP status and JSON.
//! - [`paths`]: reading images named by path, only under `image-roots`.
//! - [`ratelimit`]: per-uid (per-address on TCP) token buckets.
//! - [`feedback`]: recent predictions, what users chose, hit rates, the log.
//! - [`metrics`]: the Prometheus registry behind `GET /metrics`.
//! - [`predict`]: one prediction, shared by the API and `predictd predict`.
//! - [`imaging`]: sniff, size-check, decode, orient, crop, resize.
//! - [`cache`]: decoded images kept for the next click on the same photo.
//! - [`models`]: the registry of tract plans and their worker threads.
//! - [`fold`]: the graph rewrites applied to every loaded graph.
//! - [`client`]: the client for applications (async and blocking): a
//!   deadline per call, errors as values, a circuit breaker; also used by
//!   `predict --socket`, `bench` and `health`.
//! - [`bench`]: `predictd bench`'s load and its percentiles.
//!
//! # The path of one request
//!
//! `server` accepts a connection on the socket and reads the peer's uid
//! with `SO_PEERCRED`. hyper parses the request and calls [`api::handle`],
//! which starts the request's timeout, picks the route from method and
//! path, checks the caller, and for `POST /v1/predict` reads the image
//! (raw body, multipart form or JSON path) within the body limit.
//! [`predict::predict`] resolves the model names, decodes the image once on
//! a blocking thread ([`imaging::decode`]: format from the bytes, pixel
//! count from the header before any pixel is allocated, EXIF orientation),
//! checks the point, then queues one job per model at the same time. Each
//! model's worker thread ([`models`]) crops its window, resizes it, runs
//! its tract plan and replies on the job's own channel; a full queue is a
//! 503 at once. The answers are gathered into the JSON of the SPEC, and
//! one log line records the request with its duration.

#![forbid(unsafe_code)]

pub mod api;
pub mod bench;
pub mod cache;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod feedback;
pub mod fold;
pub mod imaging;
pub mod logging;
pub mod metrics;
pub mod models;
pub mod paths;
pub mod predict;
pub mod ratelimit;
pub mod server;
pub mod signals;
