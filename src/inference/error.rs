//! What can go wrong loading or running a model.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The graph file could not be read.
    #[error("Cannot read graph {path}")]
    ReadGraph {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The labels file could not be read.
    #[error("Cannot read labels {path}")]
    ReadLabels {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// tract refused the graph (corrupt file, missing node, unsupported op).
    #[error("Model {model}: cannot load graph {path}: {reason}")]
    Load {
        model: String,
        path: PathBuf,
        reason: String,
    },
    /// The graph loaded but its answer to a test input is unusable.
    #[error("Model {model}: test inference failed: {reason}")]
    SelfTest { model: String, reason: String },
    /// Every worker is busy and the queue is full.
    #[error("Model {0} is overloaded; try again shortly")]
    Overloaded(String),
    /// The worker failed to run the graph on this input.
    #[error("Model {model}: inference failed: {reason}")]
    Inference { model: String, reason: String },
    /// The worker thread went away (only during shutdown).
    #[error("Model {0} is shutting down")]
    Gone(String),
}
