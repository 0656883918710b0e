//! The command line: parse with clap, run a subcommand (one file each),
//! map every error to a sysexits-style exit code in one place
//! (`error.rs`). `serve` is the composition root of the daemon.

mod bench;
mod check;
mod error;
mod health;
mod inspect;
mod predict;
mod serve;
mod show_config;

use clap::{Parser, Subcommand};
use error::{CliError, EX_USAGE};
use std::path::PathBuf;
use std::process::ExitCode;
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
    Serve(serve::Args),
    /// Load every model and run one inference each; exit 0 or non-zero with the reason.
    Check(check::Args),
    /// Print a graph's inputs, likely outputs, ops (and those not supported)
    /// and a ready [[model]] section for it (.pb or .onnx).
    Inspect(inspect::Args),
    /// Print the effective configuration as TOML, every key with its value.
    Config(show_config::Args),
    /// Predict for images, in-process (--config or defaults) or through a daemon (--socket).
    Predict(predict::Args),
    /// Load a running daemon and print throughput and latency percentiles.
    Bench(bench::Args),
    /// For probes: exit 0 when the daemon answers /healthz (/readyz with --ready), else 69.
    Health(health::Args),
}

fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Serve(args) => serve::run(args),
        Command::Check(args) => check::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Config(args) => show_config::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Health(args) => health::run(args),
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
    // A kernel family forced by the environment must be one this CPU
    // runs; the family is set up when the first model loads.
    if let Err(e) = crate::inference::kernels::validate() {
        eprintln!("predictd: {e}");
        return ExitCode::from(error::EX_CONFIG);
    }
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

/// A request of `bench` or `predict --socket` that takes longer is an error.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("predictd-io")
        .enable_all()
        .build()
        .map_err(|e| CliError::Os(format!("Cannot start the async runtime: {e}")))
}
