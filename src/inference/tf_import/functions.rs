//! Function calls replaced by the functions' bodies: what
//! `convert_variables_to_constants_v2` leaves of the functions it does not
//! inline.

use std::collections::HashMap;
use tract_tensorflow::tfpb::tensorflow::attr_value::Value;
use tract_tensorflow::tfpb::tensorflow::{FunctionDef, GraphDef, NodeDef};

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
    let Some(library) = graph.library.take() else {
        return Ok(());
    };
    let functions: HashMap<String, FunctionDef> = library
        .function
        .into_iter()
        .filter_map(|f| Some((f.signature.as_ref()?.name.clone(), f)))
        .collect();
    for _round in 0..8 {
        if !graph.node.iter().any(is_call) {
            return Ok(());
        }
        let mut out = Vec::with_capacity(graph.node.len());
        for node in std::mem::take(&mut graph.node) {
            if is_call(&node) {
                inline_call(&node, &functions, &mut out)?;
            } else {
                out.push(node);
            }
        }
        graph.node = out;
    }
    Err(ImportError::Node {
        node: "(library)".into(),
        op: "PartitionedCall".into(),
        why: "function calls nested more than 8 deep".into(),
    })
}

/// Whether `node` calls a function of the library.
fn is_call(node: &NodeDef) -> bool {
    matches!(
        node.op.as_str(),
        "PartitionedCall" | "StatefulPartitionedCall"
    )
}

/// Pushes on `out` the body of the function `call` calls, its nodes named
/// under the call's, then the call as an `IdentityN` of the results.
fn inline_call(
    call: &NodeDef,
    functions: &HashMap<String, FunctionDef>,
    out: &mut Vec<NodeDef>,
) -> Result<(), ImportError> {
    let function = called(call, functions)?;
    let signature = function.signature.as_ref().unwrap();
    let scope = Scope::of(call, function);
    for inner in &function.node_def {
        let mut node = inner.clone();
        node.name = format!("{}/{}", call.name, inner.name);
        node.input = inner
            .input
            .iter()
            .filter(|i| !i.starts_with('^'))
            .map(|i| scope.outer(i))
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
                .ok_or_else(|| call_error(call, format!("no result {:?}", o.name)))?;
            scope.outer(r)
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.push(NodeDef {
        name: call.name.clone(),
        op: "IdentityN".into(),
        input: results,
        ..Default::default()
    });
    Ok(())
}

/// The error `why` about the node `call`.
fn call_error(call: &NodeDef, why: String) -> ImportError {
    ImportError::Node {
        node: call.name.clone(),
        op: call.op.clone(),
        why,
    }
}

/// The function of the library that `call` calls.
fn called<'f>(
    call: &NodeDef,
    functions: &'f HashMap<String, FunctionDef>,
) -> Result<&'f FunctionDef, ImportError> {
    let name = match call.attr.get("f").and_then(|a| a.value.as_ref()) {
        Some(Value::Func(f)) => f.name.clone(),
        _ => return Err(call_error(call, "no function named".into())),
    };
    functions.get(&name).ok_or_else(|| {
        call_error(
            call,
            format!("the graph's library has no function {name:?}"),
        )
    })
}

/// What the references in a function's body name in the graph, for one
/// call of the function.
struct Scope<'a> {
    call: &'a NodeDef,
    /// The function's input arguments, to the call's data inputs.
    args: HashMap<&'a str, &'a str>,
    /// The body's nodes, to their ops.
    ops: HashMap<&'a str, &'a str>,
}

impl<'a> Scope<'a> {
    /// The scope of `function`'s body when `call` calls it.
    fn of(call: &'a NodeDef, function: &'a FunctionDef) -> Scope<'a> {
        let signature = function.signature.as_ref().unwrap();
        let data: Vec<&String> = call.input.iter().filter(|i| !i.starts_with('^')).collect();
        let args = signature
            .input_arg
            .iter()
            .zip(data)
            .map(|(a, i)| (a.name.as_str(), i.as_str()))
            .collect();
        let ops = function
            .node_def
            .iter()
            .map(|n| (n.name.as_str(), n.op.as_str()))
            .collect();
        Scope { call, args, ops }
    }

    /// "arg", "arg:0", "node:out_arg:k" -> a name in the graph.
    fn outer(&self, reference: &str) -> Result<String, ImportError> {
        let (args, ops) = (&self.args, &self.ops);
        let mut parts: Vec<&str> = reference.split(':').collect();
        if parts.len() == 2 && ops.contains_key(parts[0]) {
            parts.push("0");
        }
        match parts[..] {
            [arg] | [arg, "0"] if args.contains_key(arg) => Ok(args[arg].to_string()),
            [node, out_arg, k] if ops.contains_key(node) => {
                let k: usize = k
                    .parse()
                    .map_err(|_| call_error(self.call, format!("input {reference:?}")))?;
                Ok(self.output(node, out_arg, k))
            }
            _ => Err(call_error(
                self.call,
                format!("cannot follow the function's input {reference:?}"),
            )),
        }
    }

    /// The graph's name for output `k` of the output argument `out_arg` of
    /// the body's node `node`.
    fn output(&self, node: &str, out_arg: &str, k: usize) -> String {
        let base = OUTPUT_ARGS
            .iter()
            .find(|(op, _)| *op == self.ops[node])
            .and_then(|(_, outs)| outs.iter().position(|o| *o == out_arg))
            .unwrap_or(0);
        let slot = base + k;
        match slot {
            0 => format!("{}/{node}", self.call.name),
            s => format!("{}/{node}:{s}", self.call.name),
        }
    }
}
