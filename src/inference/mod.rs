//! Inference: graphs read from TensorFlow and ONNX files, rewritten, run
//! by tract on each model's worker threads. The only layer that knows
//! tract.
//!
//! - [`registry`]: every configured model, loaded and checked, swapped
//!   whole on reload;
//! - [`worker`]: each model's threads, its bounded queue, one inference;
//! - [`load`]: a graph file to an optimized plan;
//! - [`preprocess`]: a model's input made of its window's pixels;
//! - [`tf_import`], [`onnx_import`]: what TensorFlow and ONNX write, made
//!   readable by tract; [`inspect`]: a graph described for its config;
//! - [`rewrite`]: predictd's graph passes and fused operators.

mod error;
pub(crate) mod inspect;
pub mod kernels;
pub(crate) mod load;
pub(crate) mod onnx_import;
pub(crate) mod preprocess;
pub(crate) mod registry;
pub mod rewrite;
pub(crate) mod tf_import;
pub(crate) mod worker;

// What tools, examples and tests use: a plan run alone, without workers.
pub use error::ModelError;
pub use kernels::depthwise_kernel;
pub use load::{optimized_plan, run_raw, run_raw_timed, Plan};
pub use worker::{executor_for, run_on};

pub(crate) use registry::{alive, Model, ModelInfo, Registry};
pub(crate) use worker::{top_labels, Inference};
