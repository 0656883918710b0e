//! Function calls replaced by the functions' bodies: what
//! `convert_variables_to_constants_v2` leaves of the functions it does not
//! inline.

use std::collections::HashMap;
use tract_tensorflow::tfpb::tensorflow::attr_value::Value;
use tract_tensorflow::tfpb::tensorflow::{GraphDef, NodeDef};

use super::ImportError;

/// Output arguments of the multi-output ops a function body may read by
/// name (`node:batch_mean:0`); every other op's outputs are one argument.
const OUTPUT_ARGS: &[(&str, &[&str])] = &[
    (
        "FusedBatchNorm",
        &[
            "y",
            "batch_mean",
            "batch_variance",
            "reserve_space_1",
            "reserve_space_2",
        ],
    ),
    (
        "FusedBatchNormV2",
        &[
            "y",
            "batch_mean",
            "batch_variance",
            "reserve_space_1",
            "reserve_space_2",
        ],
    ),
    (
        "FusedBatchNormV3",
        &[
            "y",
            "batch_mean",
            "batch_variance",
            "reserve_space_1",
            "reserve_space_2",
            "reserve_space_3",
        ],
    ),
    ("TopKV2", &["values", "indices"]),
    ("Unique", &["y", "idx"]),
];

/// Replaces each `PartitionedCall` / `StatefulPartitionedCall` of a
/// function of the graph's library by the function's body: what
/// `convert_variables_to_constants_v2` leaves of a function it does not
/// inline (Keras 2.15 runs `Conv2D(groups=G)` as one). The body's nodes
/// are named `<call>/<node>`; the call becomes an `IdentityN` of the
/// function's results, so its consumers read them unchanged. Calls inside
/// bodies are inlined in turn.
pub(super) fn inline_functions(graph: &mut GraphDef) -> Result<(), ImportError> {
    use tract_tensorflow::tfpb::tensorflow::FunctionDef;
    let Some(library) = graph.library.take() else {
        return Ok(());
    };
    let functions: HashMap<String, FunctionDef> = library
        .function
        .into_iter()
        .filter_map(|f| Some((f.signature.as_ref()?.name.clone(), f)))
        .collect();
    for _round in 0..8 {
        let calls = graph
            .node
            .iter()
            .any(|n| matches!(n.op.as_str(), "PartitionedCall" | "StatefulPartitionedCall"));
        if !calls {
            return Ok(());
        }
        let mut out = Vec::with_capacity(graph.node.len());
        for call in std::mem::take(&mut graph.node) {
            if !matches!(
                call.op.as_str(),
                "PartitionedCall" | "StatefulPartitionedCall"
            ) {
                out.push(call);
                continue;
            }
            let fail = |why: String| ImportError::Node {
                node: call.name.clone(),
                op: call.op.clone(),
                why,
            };
            let name = match call.attr.get("f").and_then(|a| a.value.as_ref()) {
                Some(Value::Func(f)) => f.name.clone(),
                _ => return Err(fail("no function named".into())),
            };
            let function = functions
                .get(&name)
                .ok_or_else(|| fail(format!("the graph's library has no function {name:?}")))?;
            let signature = function.signature.as_ref().unwrap();
            let data: Vec<&String> = call.input.iter().filter(|i| !i.starts_with('^')).collect();
            let args: HashMap<&str, &str> = signature
                .input_arg
                .iter()
                .zip(&data)
                .map(|(a, i)| (a.name.as_str(), i.as_str()))
                .collect();
            let ops: HashMap<&str, &str> = function
                .node_def
                .iter()
                .map(|n| (n.name.as_str(), n.op.as_str()))
                .collect();
            // "arg", "arg:0", "node:out_arg:k" -> a name in the graph.
            let outer = |reference: &str| -> Result<String, ImportError> {
                let mut parts: Vec<&str> = reference.split(':').collect();
                if parts.len() == 2 && ops.contains_key(parts[0]) {
                    parts.push("0");
                }
                match parts[..] {
                    [arg] | [arg, "0"] if args.contains_key(arg) => Ok(args[arg].to_string()),
                    [node, out_arg, k] if ops.contains_key(node) => {
                        let k: usize = k
                            .parse()
                            .map_err(|_| fail(format!("input {reference:?}")))?;
                        let base = OUTPUT_ARGS
                            .iter()
                            .find(|(op, _)| *op == ops[node])
                            .and_then(|(_, outs)| outs.iter().position(|o| *o == out_arg))
                            .unwrap_or(0);
                        let slot = base + k;
                        Ok(match slot {
                            0 => format!("{}/{node}", call.name),
                            s => format!("{}/{node}:{s}", call.name),
                        })
                    }
                    _ => Err(fail(format!(
                        "cannot follow the function's input {reference:?}"
                    ))),
                }
            };
            for inner in &function.node_def {
                let mut node = inner.clone();
                node.name = format!("{}/{}", call.name, inner.name);
                node.input = inner
                    .input
                    .iter()
                    .filter(|i| !i.starts_with('^'))
                    .map(|i| outer(i))
                    .collect::<Result<_, _>>()?;
                out.push(node);
            }
            let results = signature
                .output_arg
                .iter()
                .map(|o| {
                    let r = function
                        .ret
                        .get(&o.name)
                        .ok_or_else(|| fail(format!("no result {:?}", o.name)))?;
                    outer(r)
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push(NodeDef {
                name: call.name.clone(),
                op: "IdentityN".into(),
                input: results,
                ..Default::default()
            });
        }
        graph.node = out;
    }
    Err(ImportError::Node {
        node: "(library)".into(),
        op: "PartitionedCall".into(),
        why: "function calls nested more than 8 deep".into(),
    })
}
