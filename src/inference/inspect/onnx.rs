//! `inspect` of an ONNX model: its inputs and outputs with their shapes,
//! the ops (and those predictd cannot run), the layout and size of the
//! image input, and the report with its `[[model]]` section.

use super::{shape_text, write_labels, write_ops, write_section_head, write_unsupported};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::path::Path;
use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
use tract_onnx::pb::type_proto::Value as Type;
use tract_onnx::pb::{GraphProto, ModelProto, ValueInfoProto};

/// The report `predictd inspect` prints for an ONNX model.
pub(super) fn report(path: &Path, proto: &ModelProto) -> String {
    let Some(graph) = proto.graph.as_ref() else {
        return format!("# {}: an ONNX file with no graph\n", path.display());
    };
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();
    let mut out = String::new();
    write_findings(&mut out, path, proto, graph, &inputs);
    write_section(&mut out, path, graph, inputs.first().copied());
    out
}

/// A value's dimensions, -1 for one the model does not fix (none if it is
/// not a tensor or has no shape).
fn dims(v: &ValueInfoProto) -> Vec<i64> {
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Type::TensorType(t)) => t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(Dim::DimValue(v)) => v,
                        _ => -1,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The report's comments: the model's inputs (not its initializers), its
/// outputs and ops, and those predictd cannot run.
fn write_findings(
    out: &mut String,
    path: &Path,
    proto: &ModelProto,
    graph: &GraphProto,
    inputs: &[&ValueInfoProto],
) {
    let _ = writeln!(
        out,
        "# {}: ONNX, {} nodes, opset {:?}",
        path.display(),
        graph.node.len(),
        proto.opset_import.iter().map(|o| o.version).max()
    );
    let _ = writeln!(out, "# inputs:");
    for i in inputs {
        let _ = writeln!(out, "#   {} {}", i.name, shape_text(&dims(i)));
    }
    let _ = writeln!(out, "# outputs:");
    for o in &graph.output {
        let _ = writeln!(out, "#   {} {}", o.name, shape_text(&dims(o)));
    }
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &graph.node {
        *ops.entry(n.op_type.as_str()).or_default() += 1;
    }
    write_ops(out, ops);
    let missing = crate::inference::onnx_import::unsupported(proto);
    write_unsupported(out, &missing, "model", "every op is supported");
}

/// An image input's layout and size: (NCHW, height, width), -1 where not
/// fixed. NCHW when the second axis is 3 and the last is not.
fn image_layout(shape: &[i64]) -> (bool, i64, i64) {
    let nchw = shape.len() == 4 && shape[1] == 3 && shape[3] != 3;
    let (h, w) = match (nchw, shape) {
        (true, [_, _, h, w]) | (false, [_, h, w, _]) => (*h, *w),
        _ => (-1, -1),
    };
    (nchw, h, w)
}

/// The `[[model]]` section serving the model from its first input to its
/// first output.
fn write_section(
    out: &mut String,
    path: &Path,
    graph: &GraphProto,
    input: Option<&ValueInfoProto>,
) {
    let (nchw, h, w) = image_layout(&input.map(dims).unwrap_or_default());
    let output = graph.output.first();
    let classes = output
        .map(dims)
        .and_then(|d| d.last().copied())
        .filter(|c| *c > 0);
    let last_op = graph.node.last().map(|n| n.op_type.as_str()).unwrap_or("");
    write_section_head(out, path, "");
    let labels = match classes {
        Some(n) => format!("one label a line, {n} lines"),
        None => "one label a line, one per output class".into(),
    };
    write_labels(out, path, &labels);
    let name = |v: Option<&ValueInfoProto>| v.map(|v| v.name.clone()).unwrap_or_default();
    let _ = writeln!(out, "input = {:?}", name(input));
    let _ = writeln!(out, "output = {:?}", name(output));
    let _ = writeln!(out, "layout = {:?}", if nchw { "nchw" } else { "nhwc" });
    let _ = writeln!(out, "crop = \"fraction:1.0\"");
    let size = |v: i64| {
        if v > 0 {
            v.to_string()
        } else {
            "224  # not fixed by the model: use the size it was trained at".into()
        }
    };
    let _ = writeln!(out, "input-width = {}", size(w));
    let _ = writeln!(out, "input-height = {}", size(h));
    let _ = writeln!(
        out,
        "# a guess (-1..1): use the normalization the model was trained with"
    );
    let _ = writeln!(out, "input-mean = 127.5");
    let _ = writeln!(out, "input-std = 127.5");
    if last_op != "Softmax" {
        let _ = writeln!(
            out,
            "# the last op is {last_op}, not a softmax: predictd applies one"
        );
        let _ = writeln!(out, "softmax = true");
    }
}
