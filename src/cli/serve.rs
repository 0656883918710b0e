//! `predictd serve`: the composition root. Config read, fork (with
//! `--daemon`) before any thread exists, logging, the socket bound, the
//! feedback store, the served state and its loader thread, the signals
//! wired to it, and the HTTP server run until a stop.

use super::error::{daemon_exit_code, CliError, EX_TEMPFAIL};
use super::{absolute, error_chain, runtime};
use crate::config::Config;
use crate::daemon::{self, logging};
use crate::http::server;
use crate::service::feedback::FeedbackStore;
use crate::service::state::{Options, State};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
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
}

pub fn run(args: Args) -> Result<(), CliError> {
    let options = Options {
        config_path: absolute(args.config),
        socket: absolute(args.socket),
        pidfile: absolute(args.pidfile),
        http: args.http,
        cwd: std::env::current_dir()
            .map_err(|e| CliError::Os(format!("Cannot read the current folder: {e}")))?,
    };
    serve(options, args.daemon)
}

/// `serve`: foreground, or forked into the background with `--daemon`.
fn serve(options: Options, as_daemon: bool) -> Result<(), CliError> {
    let config = options.load_config()?;
    // Fork first: no thread and no runtime may exist before this point.
    let daemonized = if as_daemon {
        let syslog = &config.server.syslog_socket;
        let reachable = logging::syslog_reachable(syslog);
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
            Ok(()) => logging::init_syslog(syslog).map_err(|e| e.to_string()),
            Err(reason) => Err(reason),
        };
        if let Err(reason) = logging {
            // Still serve: a missing syslog must not stop the service.
            let _ = logging::init_stderr();
            log::warn!(
                "cannot log to syslog at {}: {reason}; logging to stderr instead",
                syslog.display()
            );
        }
        Some((notifier, pidfile))
    } else {
        let _ = logging::init_stderr();
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
    let (feedback, replay) = FeedbackStore::open(
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
    let (reload_state, stopping) = (state.clone(), shutdown_tx);
    daemon::signals::spawn(
        move || reload_state.request_reload(),
        move || {
            let _ = stopping.send(true);
        },
    )
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
