//! `inspect` of an ONNX model: its inputs and outputs with their shapes,
//! the ops (and those predictd cannot run), the layout and size of the
//! image input, and the report with its `[[model]]` section.

use super::model_name;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

/// The report `predictd inspect` prints for an ONNX model.
pub(super) fn report(path: &Path, proto: &tract_onnx::pb::ModelProto) -> String {
    use tract_onnx::pb::type_proto::Value as Type;
    let mut out = String::new();
    let Some(graph) = proto.graph.as_ref() else {
        return format!("# {}: an ONNX file with no graph\n", path.display());
    };
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let dims = |v: &tract_onnx::pb::ValueInfoProto| -> Vec<i64> {
        match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(Type::TensorType(t)) => t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(
                                tract_onnx::pb::tensor_shape_proto::dimension::Value::DimValue(v),
                            ) => v,
                            _ => -1,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    };
    let inputs: Vec<_> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .collect();
    let _ = writeln!(
        out,
        "# {}: ONNX, {} nodes, opset {:?}",
        path.display(),
        graph.node.len(),
        proto.opset_import.iter().map(|o| o.version).max()
    );
    let _ = writeln!(out, "# inputs:");
    for i in &inputs {
        let _ = writeln!(
            out,
            "#   {} {}",
            i.name,
            format!("{:?}", dims(i)).replace("-1", "?")
        );
    }
    let _ = writeln!(out, "# outputs:");
    for o in &graph.output {
        let _ = writeln!(
            out,
            "#   {} {}",
            o.name,
            format!("{:?}", dims(o)).replace("-1", "?")
        );
    }
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &graph.node {
        *ops.entry(n.op_type.as_str()).or_default() += 1;
    }
    let _ = writeln!(out, "# ops:");
    let mut ops: Vec<_> = ops.into_iter().collect();
    ops.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (op, n) in ops {
        let _ = writeln!(out, "#   {n:6} {op}");
    }
    let missing = crate::inference::onnx_import::unsupported(proto);
    if missing.is_empty() {
        let _ = writeln!(out, "# every op is supported");
    } else {
        let _ = writeln!(
            out,
            "# NOT SUPPORTED (predictd check will refuse the model):"
        );
        for u in &missing {
            let _ = writeln!(
                out,
                "#   {} ({} node(s), first {:?})",
                u.op, u.count, u.first
            );
        }
    }
    let input = inputs.first();
    let shape = input.map(|i| dims(i)).unwrap_or_default();
    let nchw = shape.len() == 4 && shape[1] == 3 && shape[3] != 3;
    let (h, w) = match (nchw, shape.as_slice()) {
        (true, [_, _, h, w]) | (false, [_, h, w, _]) => (*h, *w),
        _ => (-1, -1),
    };
    let output = graph.output.first();
    let classes = output
        .map(|o| dims(o))
        .and_then(|d| d.last().copied())
        .filter(|c| *c > 0);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let name = model_name(&stem);
    let last_op = graph.node.last().map(|n| n.op_type.as_str()).unwrap_or("");
    let _ = writeln!(out);
    let _ = writeln!(out, "[[model]]");
    let _ = writeln!(out, "name = {name:?}");
    let _ = writeln!(out, "graph = {:?}", path.display().to_string());
    match classes {
        Some(n) => {
            let _ = writeln!(out, "# one label a line, {n} lines");
        }
        None => {
            let _ = writeln!(out, "# one label a line, one per output class");
        }
    }
    let _ = writeln!(
        out,
        "labels = {:?}",
        path.with_extension("labels.txt").display().to_string()
    );
    let _ = writeln!(
        out,
        "input = {:?}",
        input.map(|i| i.name.as_str()).unwrap_or("")
    );
    let _ = writeln!(
        out,
        "output = {:?}",
        output.map(|o| o.name.as_str()).unwrap_or("")
    );
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
    out
}
