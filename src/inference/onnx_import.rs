//! ONNX models (what PyTorch and most other trainers export), read by
//! tract-onnx and served with the same `[[model]]` keys as frozen graphs.
//! A `graph` whose name ends in `.onnx` is read here; `layout = "nchw"`
//! says the input is PyTorch's channels-first tensor.

use crate::inference::tf_import::UnsupportedOp;
use std::path::Path;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

/// Whether `graph` is read as ONNX (by its extension).
pub fn is_onnx(graph: &Path) -> bool {
    graph
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// The model's proto, for `inspect` and the op check.
pub fn proto(bytes: &[u8]) -> TractResult<ModelProto> {
    tract_onnx::onnx().proto_model_for_read(&mut &bytes[..])
}

/// Every op of the model that tract-onnx does not translate.
pub fn unsupported(proto: &ModelProto) -> Vec<UnsupportedOp> {
    let onnx = tract_onnx::onnx();
    let Some(graph) = proto.graph.as_ref() else {
        return Vec::new();
    };
    crate::inference::tf_import::tally_unsupported(
        graph
            .node
            .iter()
            .filter(|n| !onnx.op_register.0.contains_key(&n.op_type))
            .map(|n| (n.op_type.as_str(), n.name.as_str())),
    )
}

/// The inference model of `bytes`, fed at `input` and read at `output`
/// (the graph's input and output names).
pub fn model(bytes: &[u8], input: &str, output: &str) -> TractResult<InferenceModel> {
    let proto = proto(bytes)?;
    let missing = unsupported(&proto);
    if !missing.is_empty() {
        return Err(crate::inference::tf_import::ImportError::Unsupported(missing).into());
    }
    let mut model = tract_onnx::onnx().model_for_proto_model(&proto)?;
    model.set_input_names([input])?;
    model.select_outputs_by_name([output])?;
    Ok(model)
}
