//! Inference: graphs read from TensorFlow and ONNX files, rewritten, run
//! by tract on worker threads. The only layer that knows tract.

pub mod inspect;
pub mod models;
pub mod onnx_import;
pub mod preprocess;
pub mod rewrite;
pub mod tf_import;
