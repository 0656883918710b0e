//! The command line: parse with clap, run a subcommand, map every error to
//! a sysexits-style exit code in one place.

pub mod bench;

use crate::client::{self, Client};
use crate::config::{Config, ConfigError};
use crate::daemon::{self, DaemonError};
use crate::http::server::{self, ServerError};
use crate::image::ImageError;
use crate::inference::{ModelError, Registry};
use crate::service::predict::{self, Params, PredictError};
use crate::service::state::{Options, State};
use clap::{Parser, Subcommand};
use hyper::{Method, StatusCode};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "predictd",
    version,
    about = "Serves TensorFlow image classifiers over HTTP on a Unix socket"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the models (foreground, logs on stderr, unless --daemon).
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Overrides server.socket.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Fork into the background, write and lock the pidfile, log to syslog.
        #[arg(long)]
        daemon: bool,
        /// Overrides server.pidfile.
        #[arg(long)]
        pidfile: Option<PathBuf>,
        /// Also listen on TCP (for the HTML page in a browser).
        #[arg(long, value_name = "ADDR")]
        http: Option<SocketAddr>,
    },
    /// Load every model and run one inference each; exit 0 or non-zero with the reason.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Print a graph's inputs, likely outputs, ops (and those not supported)
    /// and a ready [[model]] section for it (.pb or .onnx).
    Inspect { graph: PathBuf },
    /// Print the effective configuration as TOML, every key with its value.
    Config {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Predict for images, in-process (--config or defaults) or through a daemon (--socket).
    Predict {
        #[arg(long, conflicts_with = "socket")]
        config: Option<PathBuf>,
        #[arg(long)]
        socket: Option<PathBuf>,
        #[arg(long, allow_negative_numbers = true)]
        x: f64,
        #[arg(long, allow_negative_numbers = true)]
        y: f64,
        /// Comma-separated model names (default: all).
        #[arg(long)]
        models: Option<String>,
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Print the JSON answer, one line per image.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Load a running daemon and print throughput and latency percentiles.
    Bench {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long, conflicts_with = "duration")]
        requests: Option<usize>,
        /// Seconds to run.
        #[arg(long)]
        duration: Option<f64>,
        /// Send at this many requests per second in all (an open-loop load
        /// on a fixed schedule) instead of as fast as answers come back.
        #[arg(long)]
        rate: Option<f64>,
        /// Point to ask about (default: each image's centre).
        #[arg(long)]
        x: Option<u32>,
        #[arg(long)]
        y: Option<u32>,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// For probes: exit 0 when the daemon answers /healthz (/readyz with --ready), else 69.
    Health {
        /// Default: the built-in default socket (predictd.sock in the current folder).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Ask /readyz (every model loaded) instead of /healthz.
        #[arg(long)]
        ready: bool,
        /// Deadline of the whole check.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
}

/// Everything that can stop a subcommand, for the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Client(#[from] client::ClientError),
    /// The daemon answered, and refused.
    #[error("{what}: predictd answered {status} {code}: {message}")]
    Refused {
        what: String,
        status: u16,
        code: String,
        message: String,
    },
    /// The daemon did not answer (or not in time).
    #[error("{what}: {code}: {message}")]
    Unavailable {
        what: String,
        code: String,
        message: String,
    },
    #[error("{0}: {1}")]
    Predict(String, PredictError),
    #[error("Cannot read {path}: {source}")]
    ReadInput {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Os(String),
    #[error(transparent)]
    Feedback(#[from] crate::service::feedback::FeedbackError),
}

// sysexits.h
const EX_USAGE: u8 = 64;
const EX_DATAERR: u8 = 65;
const EX_NOINPUT: u8 = 66;
const EX_UNAVAILABLE: u8 = 69;
const EX_SOFTWARE: u8 = 70;
const EX_OSERR: u8 = 71;
const EX_CANTCREAT: u8 = 73;
const EX_TEMPFAIL: u8 = 75;
const EX_CONFIG: u8 = 78;

impl CliError {
    /// The one place errors become exit codes.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) => EX_CONFIG,
            CliError::Model(m) | CliError::Server(ServerError::Models(m)) => model_exit_code(m),
            CliError::Server(ServerError::Config(_)) => EX_CONFIG,
            CliError::Server(ServerError::SocketInUse(_)) => EX_TEMPFAIL,
            CliError::Server(_) => EX_CANTCREAT,
            CliError::Daemon(d) => daemon_exit_code(d),
            CliError::Client(_) | CliError::Unavailable { .. } => EX_UNAVAILABLE,
            CliError::Refused { .. } => EX_DATAERR,
            CliError::Predict(_, PredictError::Image(ImageError::UnsupportedFormat)) => EX_DATAERR,
            CliError::Predict(_, PredictError::Model(_) | PredictError::Internal(_)) => EX_SOFTWARE,
            CliError::Predict(..) => EX_DATAERR,
            CliError::ReadInput { .. } => EX_NOINPUT,
            CliError::Os(_) => EX_OSERR,
            CliError::Feedback(_) => EX_CANTCREAT,
        }
    }
}

fn model_exit_code(e: &ModelError) -> u8 {
    match e {
        ModelError::ReadGraph { .. } | ModelError::ReadLabels { .. } => EX_NOINPUT,
        ModelError::Load { .. } | ModelError::SelfTest { .. } => EX_DATAERR,
        _ => EX_SOFTWARE,
    }
}

fn daemon_exit_code(e: &DaemonError) -> u8 {
    match e {
        DaemonError::PidfileLocked(_) => EX_TEMPFAIL,
        DaemonError::ChildFailed(code, _) => *code,
        _ => EX_OSERR,
    }
}

/// Parses the command line and runs it; the process's exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(EX_USAGE),
            };
        }
    };
    let code = match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("predictd: {}", error_chain(&e));
            ExitCode::from(e.exit_code())
        }
    };
    // Log lines are written by a thread of their own: let it finish.
    crate::daemon::logging::flush();
    code
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

fn absolute(p: Option<PathBuf>) -> Option<PathBuf> {
    p.map(|p| std::path::absolute(&p).unwrap_or(p))
}

fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Serve {
            config,
            socket,
            daemon,
            pidfile,
            http,
        } => {
            let options = Options {
                config_path: absolute(config),
                socket: absolute(socket),
                pidfile: absolute(pidfile),
                http,
                cwd: std::env::current_dir()
                    .map_err(|e| CliError::Os(format!("Cannot read the current folder: {e}")))?,
            };
            serve(options, daemon)
        }
        Command::Check { config } => {
            let _ = crate::daemon::logging::init_stderr();
            let config = Config::load(absolute(config).as_deref())?;
            let registry = Registry::load(&config)?;
            println!("kernels {}", crate::inference::kernels());
            for m in &registry.models {
                println!(
                    "ok {} {} {} labels, input {:?}, loaded in {:.0} ms",
                    m.info.name, m.info.version, m.info.labels, m.info.input_shape, m.info.load_ms
                );
            }
            Ok(())
        }
        Command::Inspect { graph } => {
            let text = crate::inference::inspect::report_file(&graph).map_err(|e| {
                CliError::Model(ModelError::Load {
                    model: "inspect".into(),
                    path: graph.clone(),
                    reason: e,
                })
            })?;
            print!("{text}");
            Ok(())
        }
        Command::Config { config } => {
            let config = Config::load(absolute(config).as_deref())?;
            print!("{}", config.to_toml());
            Ok(())
        }
        Command::Predict {
            config,
            socket,
            x,
            y,
            models,
            top,
            json,
            images,
        } => {
            let runtime = runtime(1)?;
            runtime.block_on(predict_cli(config, socket, x, y, models, top, json, images))
        }
        Command::Health {
            socket,
            ready,
            timeout_ms,
        } => health(socket, ready, timeout_ms),
        Command::Bench {
            socket,
            concurrency,
            requests,
            duration,
            rate,
            x,
            y,
            images,
        } => {
            let runtime = runtime(2)?;
            runtime.block_on(async move {
                let mut inputs = Vec::new();
                for path in &images {
                    let bytes = std::fs::read(path).map_err(|source| CliError::ReadInput {
                        path: path.clone(),
                        source,
                    })?;
                    let (_, w, h) = crate::image::header_dimensions(&bytes)
                        .map_err(|e| CliError::Predict(path.display().to_string(), e.into()))?;
                    let query = format!("x={}&y={}", x.unwrap_or(w / 2), y.unwrap_or(h / 2));
                    inputs.push((bytes::Bytes::from(bytes), query));
                }
                let requests = if duration.is_none() {
                    Some(requests.unwrap_or(100))
                } else {
                    requests
                };
                let report = crate::cli::bench::bench(
                    Client::new(&socket).timeout(BENCH_TIMEOUT),
                    inputs,
                    concurrency,
                    requests,
                    duration.map(Duration::from_secs_f64),
                    rate.filter(|r| *r > 0.0),
                )
                .await;
                report.print();
                Ok(())
            })
        }
    }
}

/// A request of `bench` or `predict --socket` that takes longer is an error.
const BENCH_TIMEOUT: Duration = Duration::from_secs(60);

/// `health`: one GET within the deadline; 0 for a 200, else 69 saying why.
fn health(socket: Option<PathBuf>, ready: bool, timeout_ms: u64) -> Result<(), CliError> {
    let socket = match socket {
        Some(s) => s,
        None => Config::load(None)?.server.socket,
    };
    let route = if ready { "/readyz" } else { "/healthz" };
    let runtime = runtime(1)?;
    let client = Client::new(&socket).timeout(Duration::from_millis(timeout_ms));
    let answer =
        runtime.block_on(client.send(Method::GET, route, "text/plain", Default::default()));
    match answer {
        Ok((StatusCode::OK, _)) => {
            println!("ok {} {route}", socket.display());
            Ok(())
        }
        Ok((status, body)) => Err(CliError::Unavailable {
            what: format!("{} {route}", socket.display()),
            code: status.as_u16().to_string(),
            message: String::from_utf8_lossy(&body).trim().to_string(),
        }),
        Err(e) => Err(CliError::Client(e)),
    }
}

fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("predictd-io")
        .enable_all()
        .build()
        .map_err(|e| CliError::Os(format!("Cannot start the async runtime: {e}")))
}

#[allow(clippy::too_many_arguments)]
async fn predict_cli(
    config: Option<PathBuf>,
    socket: Option<PathBuf>,
    x: f64,
    y: f64,
    models: Option<String>,
    top: usize,
    json: bool,
    images: Vec<PathBuf>,
) -> Result<(), CliError> {
    let x_text = x.to_string();
    let y_text = y.to_string();
    let top_text = top.to_string();
    let params = Params::from_text(
        Some(&x_text),
        Some(&y_text),
        models.as_deref(),
        Some(&top_text),
    )
    .map_err(|e| CliError::Predict("arguments".into(), e))?;
    let target = match socket {
        Some(socket) => Err(Client::new(&socket)
            .timeout(BENCH_TIMEOUT)
            .circuit_breaker(0, Duration::ZERO)),
        None => {
            let config = Config::load(absolute(config).as_deref())?;
            let registry = tokio::task::spawn_blocking(move || {
                Registry::load(&config).map(|r| (Arc::new(r), config))
            })
            .await
            .map_err(|e| CliError::Os(e.to_string()))??;
            Ok(registry)
        }
    };
    for path in &images {
        let bytes = std::fs::read(path).map_err(|source| CliError::ReadInput {
            path: path.clone(),
            source,
        })?;
        let answer = match &target {
            Ok((registry, config)) => {
                let p = predict::predict(
                    registry.clone(),
                    bytes.into(),
                    &params,
                    config.server.max_pixels,
                    None,
                    None,
                )
                .await
                .map_err(|e| CliError::Predict(path.display().to_string(), e))?;
                serde_json::to_value(&p).expect("prediction serializes")
            }
            Err(client) => {
                let options = client::Options {
                    models: params.models.clone(),
                    top,
                };
                let answer = client.predict(bytes, x, y, &options).await;
                let what = path.display().to_string();
                match (answer.body, answer.error, answer.status) {
                    (Some(body), _, _) => body,
                    (None, error, Some(status)) if status != 503 => {
                        return Err(CliError::Refused {
                            what,
                            status,
                            code: error.unwrap_or_default(),
                            message: answer.message.unwrap_or_default(),
                        })
                    }
                    (None, error, _) => {
                        return Err(CliError::Unavailable {
                            what,
                            code: error.unwrap_or_default(),
                            message: answer.message.unwrap_or_default(),
                        })
                    }
                }
            }
        };
        if json {
            println!("{answer}");
        } else {
            print_prediction(&path.display().to_string(), &answer);
        }
    }
    Ok(())
}

fn print_prediction(name: &str, answer: &serde_json::Value) {
    let w = &answer["image"]["width"];
    let h = &answer["image"]["height"];
    let point = &answer["point"];
    println!("{name} ({w}x{h}) at ({}, {})", point[0], point[1]);
    if let Some(predictions) = answer["predictions"].as_object() {
        for (model, labels) in predictions {
            let version = answer["models"][model].as_str().unwrap_or("");
            let short = version.get(..version.len().min(19)).unwrap_or(version);
            println!("  {model} [{short}] {} ms", answer["timing_ms"][model]);
            for entry in labels.as_array().into_iter().flatten() {
                let p = entry["probability"].as_f64().unwrap_or(0.0);
                println!(
                    "    {:<24} {:>6.3}",
                    entry["label"].as_str().unwrap_or(""),
                    p
                );
            }
        }
    }
}

/// `serve`: foreground, or forked into the background with `--daemon`.
fn serve(options: Options, as_daemon: bool) -> Result<(), CliError> {
    let config = options.load_config()?;
    // Fork first: no thread and no runtime may exist before this point.
    let daemonized = if as_daemon {
        let syslog = &config.server.syslog_socket;
        let reachable = crate::daemon::logging::syslog_reachable(syslog);
        if let Err(reason) = &reachable {
            eprintln!(
                "predictd: warning: cannot log to syslog at {} ({reason}); the daemon logs to stderr instead",
                syslog.display()
            );
        }
        let (notifier, pidfile) =
            daemon::daemonize(&config.server.pidfile, reachable.is_err(), |e| {
                daemon_exit_code(e).into()
            })?;
        let logging = match reachable {
            Ok(()) => crate::daemon::logging::init_syslog(syslog).map_err(|e| e.to_string()),
            Err(reason) => Err(reason),
        };
        if let Err(reason) = logging {
            // Still serve: a missing syslog must not stop the service.
            let _ = crate::daemon::logging::init_stderr();
            log::warn!(
                "cannot log to syslog at {}: {reason}; logging to stderr instead",
                syslog.display()
            );
        }
        Some((notifier, pidfile))
    } else {
        let _ = crate::daemon::logging::init_stderr();
        None
    };
    let (notifier, pidfile) = daemonized.unzip();
    let result = serve_in_process(options, config, notifier.clone());
    // The pidfile goes before the waiting parent hears of a failure.
    drop(pidfile);
    if let (Err(e), Some(n)) = (&result, &notifier) {
        n.notify(Err((e.exit_code(), error_chain(e))));
    }
    result
}

fn serve_in_process(
    options: Options,
    config: Config,
    notifier: Option<daemon::Notifier>,
) -> Result<(), CliError> {
    let (unix, socket_file) = server::bind_unix(&config)?;
    let (feedback, replay) = crate::service::feedback::FeedbackStore::open(
        &config.server.feedback_log,
        config.server.recent_predictions,
    )?;
    if replay.records > 0 || replay.skipped > 0 {
        log::info!(
            "feedback: read {} records back from {} ({} unreadable lines skipped)",
            replay.records,
            config.server.feedback_log.display(),
            replay.skipped
        );
    }
    let state = State::start(config, options, feedback)
        .map_err(|e| CliError::Os(format!("Cannot start the loader thread: {e}")))?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    crate::daemon::signals::spawn(state.clone(), shutdown_tx)
        .map_err(|e| CliError::Os(format!("Cannot install signal handlers: {e}")))?;
    let runtime = runtime(2)?;
    // Errors that stop the start return from `server::run` and reach the
    // parent with their exit code (in `serve`); `on_ready` hears only of
    // readiness, or of a stop asked for before it.
    let on_ready = Arc::new(move |outcome: Result<(), String>| {
        if let Some(n) = &notifier {
            n.notify(outcome.map_err(|reason| (EX_TEMPFAIL, reason)));
        }
    });
    let result = runtime.block_on(server::run(state, unix, shutdown_rx, socket_file, on_ready));
    runtime.shutdown_timeout(Duration::from_secs(1));
    result.map_err(CliError::from)
}
