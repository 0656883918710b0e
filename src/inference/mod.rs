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
pub mod inspect;
pub mod load;
pub mod onnx_import;
pub mod preprocess;
pub mod registry;
pub mod rewrite;
pub mod tf_import;
pub mod worker;

pub use error::ModelError;
pub use load::{depthwise_kernel, kernels, optimized_plan, run_raw, run_raw_timed};
pub use registry::{alive, Model, ModelInfo, Registry};
pub use worker::{executor_for, run_on, top_labels, Inference};
