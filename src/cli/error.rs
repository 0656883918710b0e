//! Everything that can stop a subcommand, and the one mapping from an
//! error to a sysexits-style exit code.

use crate::client;
use crate::config::ConfigError;
use crate::daemon::DaemonError;
use crate::http::server::ServerError;
use crate::image::ImageError;
use crate::inference::ModelError;
use crate::service::predict::PredictError;
use std::path::PathBuf;

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
pub(super) const EX_USAGE: u8 = 64;
pub(super) const EX_DATAERR: u8 = 65;
pub(super) const EX_NOINPUT: u8 = 66;
pub(super) const EX_UNAVAILABLE: u8 = 69;
pub(super) const EX_SOFTWARE: u8 = 70;
pub(super) const EX_OSERR: u8 = 71;
pub(super) const EX_CANTCREAT: u8 = 73;
pub(super) const EX_TEMPFAIL: u8 = 75;
pub(crate) const EX_CONFIG: u8 = 78;

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

pub(super) fn daemon_exit_code(e: &DaemonError) -> u8 {
    match e {
        DaemonError::PidfileLocked(_) => EX_TEMPFAIL,
        DaemonError::ChildFailed(code, _) => *code,
        _ => EX_OSERR,
    }
}
