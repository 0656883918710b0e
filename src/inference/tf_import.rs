//! Reading the frozen graphs TensorFlow 1.x and 2.x write for image models.
//!
//! tract-tensorflow covers the core of a frozen graph; what users bring
//! also holds the spellings of other years and the leftovers of freezing.
//! This module closes that gap in two steps, before tract sees the graph:
//!
//! 1. [`prepare`] edits the `GraphDef` itself: the graph is cut at the
//!    configured input (a `Mul` after `DecodeJpeg`, as in `retrain.py`
//!    graphs, becomes a placeholder) and pruned to what the output needs;
//!    the leftovers of freezing (`IdentityN`, `StopGradient`, ...) become
//!    plain identities; old spellings are rewritten into ones tract knows
//!    (`Concat` v1 into `ConcatV2`, `BatchNormWithGlobalNormalization` into
//!    `FusedBatchNorm`, `SquaredDifference` into `Sub` and `Square`,
//!    `StridedSlice`'s new axes into `ExpandDims`); paddings read from
//!    their constants are carried on the node (`Pad`, `PadV2`,
//!    `MirrorPad`, int32 or int64).
//! 2. [`framework`] adds the ops tract lacks to its op table (`Sqrt`,
//!    `Square`, `Exp`, `Erf`, `LRN`, the pads, every `FusedBatchNorm`
//!    version).
//!
//! [`unsupported`] lists what is left that no one translates, every op at
//! once, for `predictd check` and `predictd inspect`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use tract_tensorflow::tfpb::tensorflow::attr_value::{ListValue, Value};
use tract_tensorflow::tfpb::tensorflow::{AttrValue, DataType, GraphDef, NodeDef, TensorProto};
use tract_tensorflow::tract_core::optim::Optimizer;
use tract_tensorflow::tract_hir::internal::*;
use tract_tensorflow::tract_hir::ops::array::{Pad, PadMode};
use tract_tensorflow::Tensorflow;

/// The op a padding node becomes: its paddings and mode are attributes.
const PAD: &str = "PredictdPad";

/// The tract framework with the ops image graphs of TF 1.x and 2.x need.
pub fn framework() -> Tensorflow {
    let mut tf = tract_tensorflow::tensorflow();
    // FusedBatchNormV2/V3 compute output 0 exactly as FusedBatchNorm (with
    // is_training false, checked in `prepare`); the extra outputs only
    // matter for training.
    if let Some(builder) = tf.op_register.0.get("FusedBatchNorm").copied() {
        tf.op_register.insert("FusedBatchNormV3", builder);
        tf.op_register.insert("FusedBatchNormV2", builder);
    }
    use tract_tensorflow::tract_hir::ops::math;
    tf.op_register
        .insert("Sqrt", |_, _| Ok(math::sqrt().into_hir()));
    tf.op_register
        .insert("Square", |_, _| Ok(math::square().into_hir()));
    tf.op_register
        .insert("Exp", |_, _| Ok(math::exp().into_hir()));
    tf.op_register
        .insert("Erf", |_, _| Ok(math::erf().into_hir()));
    tf.op_register
        .insert("Reciprocal", |_, _| Ok(math::recip().into_hir()));
    tf.op_register
        .insert("Inv", |_, _| Ok(math::recip().into_hir()));
    tf.op_register
        .insert("Floor", |_, _| Ok(math::floor().into_hir()));
    // TensorFlow's Shape answers int32 (or its out_type): mixed with int32
    // constants in Keras' Tensordot shape arithmetic (a Dense layer on a
    // 4-D tensor), tract's TDim shapes cannot be concatenated with them.
    tf.op_register.insert("Shape", |_, node| {
        let dt = node
            .get_attr_opt_datum_type("out_type")?
            .unwrap_or(DatumType::I32);
        Ok(expand(tract_tensorflow::tract_hir::ops::array::Shape::new(
            dt,
        )))
    });
    tf.op_register
        .insert("GatherV2", |_, _| Ok(expand(GatherV2)));
    tf.op_register.insert(PAD, pad);
    tf.op_register.insert("LRN", lrn);
    tf
}

/// What stops a graph from being served, found while preparing it.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the graph has no node named {0:?}")]
    NoNode(String),
    #[error("node {node:?} ({op}): {why}")]
    Node {
        node: String,
        op: String,
        why: String,
    },
    #[error("{}", describe_unsupported(.0))]
    Unsupported(Vec<UnsupportedOp>),
}

/// One op of the graph that predictd cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedOp {
    pub op: String,
    /// Nodes of this op in the part of the graph that is served.
    pub count: usize,
    /// The first such node, in graph order.
    pub first: String,
}

fn describe_unsupported(ops: &[UnsupportedOp]) -> String {
    let list: Vec<String> = ops
        .iter()
        .map(|u| format!("{} ({} node(s), first {:?})", u.op, u.count, u.first))
        .collect();
    format!(
        "{} op(s) of the graph are not supported: {}",
        ops.len(),
        list.join(", ")
    )
}

/// The node name in `name`, `name:0` or `^name`.
pub fn node_name(input: &str) -> &str {
    let input = input.strip_prefix('^').unwrap_or(input);
    match input.rsplit_once(':') {
        Some((node, slot)) if slot.parse::<usize>().is_ok() => node,
        _ => input,
    }
}

fn slot_of(input: &str) -> usize {
    match input.rsplit_once(':') {
        Some((_, slot)) => slot.parse().unwrap_or(0),
        None => 0,
    }
}

/// Prepares `graph` for tract: cut at `input`, pruned to what `output`
/// needs, spellings rewritten (see the module doc). Then checks that every
/// op left is in `tf`'s table, and names every one that is not.
pub fn prepare(
    graph: &mut GraphDef,
    tf: &Tensorflow,
    input: &str,
    output: &str,
) -> Result<(), ImportError> {
    let (input, output) = (node_name(input), node_name(output));
    for name in [input, output] {
        if !graph.node.iter().any(|n| n.name == name) {
            return Err(ImportError::NoNode(name.into()));
        }
    }
    inline_functions(graph)?;
    cut_at_input(graph, input);
    bypass_identity_n(graph);
    prune(graph, output);
    fill_empty_constants(graph);
    // Decoded once, for the three passes; each adds the constants it makes.
    let mut constants = Constants::of(graph);
    rewrite(graph, &mut constants)?;
    constants.refresh_identities(graph);
    mark_grouped_convolutions(graph, &mut constants)?;
    fold_batch_norms(graph, &mut constants).map_err(|e| ImportError::Node {
        node: "(batch norm folding)".into(),
        op: "FusedBatchNorm".into(),
        why: e.to_string(),
    })?;
    let missing = unsupported(graph, tf);
    if !missing.is_empty() {
        return Err(ImportError::Unsupported(missing));
    }
    Ok(())
}

/// Every op of `graph` that `tf` does not translate, with its count and
/// first node.
pub fn unsupported(graph: &GraphDef, tf: &Tensorflow) -> Vec<UnsupportedOp> {
    tally_unsupported(
        graph
            .node
            .iter()
            .filter(|n| !tf.op_register.0.contains_key(&n.op))
            .map(|n| (n.op.as_str(), n.name.as_str())),
    )
}

/// Each op of `(op, node)` pairs with its count and first node, by op.
pub fn tally_unsupported<'a>(
    nodes: impl Iterator<Item = (&'a str, &'a str)>,
) -> Vec<UnsupportedOp> {
    let mut found: BTreeMap<&str, UnsupportedOp> = BTreeMap::new();
    for (op, name) in nodes {
        found
            .entry(op)
            .or_insert_with(|| UnsupportedOp {
                op: op.to_string(),
                count: 0,
                first: name.to_string(),
            })
            .count += 1;
    }
    found.into_values().collect()
}

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
fn inline_functions(graph: &mut GraphDef) -> Result<(), ImportError> {
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

/// The configured input becomes a float placeholder with no inputs, so
/// whatever fed it (`DecodeJpeg/contents` -> `DecodeJpeg` -> ... in a
/// `retrain.py` graph) is no longer needed.
fn cut_at_input(graph: &mut GraphDef, input: &str) {
    let node = graph.node.iter_mut().find(|n| n.name == input).unwrap();
    if node.op == "Placeholder" {
        return;
    }
    node.op = "Placeholder".into();
    node.input.clear();
    node.attr.clear();
    node.attr
        .insert("dtype".into(), AttrValue::from(DataType::DtFloat));
}

/// `IdentityN` (what `tf.custom_gradient` leaves, as in Keras' swish)
/// passes input k through as output k: its consumers read input k.
fn bypass_identity_n(graph: &mut GraphDef) {
    let passes: HashMap<String, Vec<String>> = graph
        .node
        .iter()
        .filter(|n| n.op == "IdentityN")
        .map(|n| {
            let data = n.input.iter().filter(|i| !i.starts_with('^'));
            (n.name.clone(), data.cloned().collect())
        })
        .collect();
    if passes.is_empty() {
        return;
    }
    for node in &mut graph.node {
        for input in &mut node.input {
            if input.starts_with('^') {
                continue;
            }
            // Through chains of IdentityN as well.
            for _ in 0..16 {
                match passes.get(node_name(input)) {
                    Some(from) => match from.get(slot_of(input)) {
                        Some(source) => *input = source.clone(),
                        None => break,
                    },
                    None => break,
                }
            }
        }
    }
}

/// Keeps the nodes `output` depends on through data inputs; control
/// inputs (`^node`, what freezing leaves of training) are dropped.
fn prune(graph: &mut GraphDef, output: &str) {
    let index: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let mut keep = HashSet::new();
    let mut todo = VecDeque::from([output]);
    while let Some(name) = todo.pop_front() {
        let Some(&i) = index.get(name) else { continue };
        if !keep.insert(i) {
            continue;
        }
        for input in graph.node[i].input.iter().filter(|i| !i.starts_with('^')) {
            todo.push_back(node_name(input));
        }
    }
    let mut i = 0;
    graph.node.retain(|_| {
        i += 1;
        keep.contains(&(i - 1))
    });
    for node in &mut graph.node {
        node.input.retain(|i| !i.starts_with('^'));
    }
}

/// Ops that only pass their first input on at inference.
const PASS_THROUGH: &[&str] = &[
    "StopGradient",
    "PreventGradient",
    "Snapshot",
    "CheckNumerics",
    "EnsureShape",
    "PlaceholderWithDefault",
];

/// The graph's constants, read through identities (frozen variables are
/// `Const` -> `Identity`).
struct Constants {
    values: HashMap<String, Tensor>,
    identities: HashMap<String, String>,
}

impl Constants {
    fn of(graph: &GraphDef) -> Constants {
        let mut constants = Constants {
            values: HashMap::new(),
            identities: HashMap::new(),
        };
        constants.absorb(&graph.node);
        constants.refresh_identities(graph);
        constants
    }

    /// Decodes the constants among `nodes`.
    fn absorb(&mut self, nodes: &[NodeDef]) {
        for n in nodes.iter().filter(|n| n.op == "Const") {
            if let Ok(t) = n.get_attr_tensor("value") {
                self.values.insert(n.name.clone(), t);
            }
        }
    }

    /// Re-reads which nodes are identities (passes turn ops into some).
    fn refresh_identities(&mut self, graph: &GraphDef) {
        self.identities = graph
            .node
            .iter()
            .filter(|n| n.op == "Identity" && !n.input.is_empty())
            .map(|n| (n.name.clone(), n.input[0].clone()))
            .collect();
    }

    /// `t` as the constant node `name`, known to later passes.
    fn node(&mut self, name: &str, t: Tensor) -> TractResult<NodeDef> {
        let node = const_node(name, &t)?;
        self.values.insert(name.to_string(), t);
        Ok(node)
    }

    fn get(&self, input: &str) -> Option<&Tensor> {
        let mut name = node_name(input);
        for _ in 0..16 {
            if let Some(t) = self.values.get(name) {
                return Some(t);
            }
            name = node_name(self.identities.get(name)?);
        }
        None
    }

    /// A constant vector as i64s.
    fn ints(&self, input: &str) -> Option<Vec<i64>> {
        let t = self.get(input)?.cast_to::<i64>().ok()?;
        Some(
            t.to_plain_array_view::<i64>()
                .ok()?
                .iter()
                .copied()
                .collect(),
        )
    }
}

fn rewrite(graph: &mut GraphDef, constants: &mut Constants) -> Result<(), ImportError> {
    let mut added = Vec::new();
    for node in graph.node.iter_mut() {
        let (name, op) = (node.name.clone(), node.op.clone());
        let fail = |why: String| ImportError::Node {
            node: name.clone(),
            op: op.clone(),
            why,
        };
        match node.op.as_str() {
            op if PASS_THROUGH.contains(&op) => {
                node.op = "Identity".into();
                node.input.truncate(1);
            }
            "Concat" => {
                // v1: the axis first, then the values.
                if node.input.len() < 2 {
                    return Err(fail("fewer than two inputs".into()));
                }
                node.input.rotate_left(1);
                node.op = "ConcatV2".into();
                node.attr
                    .insert("Tidx".into(), AttrValue::from(DataType::DtInt32));
            }
            "FusedBatchNorm" | "FusedBatchNormV2" | "FusedBatchNormV3" => {
                if node.get_attr_opt_bool("is_training").ok().flatten() == Some(true) {
                    return Err(fail(
                        "is_training is true: freeze the graph for inference \
                         (Keras: training=False; TF1: is_training=False)"
                            .into(),
                    ));
                }
                let format = node.get_attr_opt_str("data_format").ok().flatten();
                if format.as_deref().is_some_and(|f| f != "NHWC") {
                    return Err(fail(format!("data_format {format:?}: only NHWC is served")));
                }
            }
            "BatchNormWithGlobalNormalization" => {
                // Inputs t, mean, variance, beta, gamma; FusedBatchNorm
                // takes x, scale, offset, mean, variance.
                if node.input.len() != 5 {
                    return Err(fail(format!("{} inputs instead of 5", node.input.len())));
                }
                let eps = node
                    .get_attr_float::<f32>("variance_epsilon")
                    .map_err(|e| fail(e.to_string()))?;
                let scaled = node
                    .get_attr_opt_bool("scale_after_normalization")
                    .ok()
                    .flatten()
                    .unwrap_or(false);
                let i = node.input.clone();
                let gamma = if scaled {
                    i[4].clone()
                } else {
                    let beta = constants
                        .get(&i[3])
                        .ok_or_else(|| fail("beta is not a constant".into()))?;
                    let ones = Tensor::from(tract_ndarray::Array1::<f32>::ones(beta.len()));
                    let name = format!("{}/predictd_ones", node.name);
                    added.push(const_node(&name, &ones).map_err(|e| fail(e.to_string()))?);
                    name
                };
                node.input = vec![
                    i[0].clone(),
                    gamma,
                    i[3].clone(),
                    i[1].clone(),
                    i[2].clone(),
                ];
                node.op = "FusedBatchNorm".into();
                node.attr.clear();
                node.attr
                    .insert("T".into(), AttrValue::from(DataType::DtFloat));
                node.attr.insert("epsilon".into(), AttrValue::from(eps));
                node.attr
                    .insert("is_training".into(), AttrValue::from(false));
            }
            "SquaredDifference" => {
                let sub = format!("{}/predictd_sub", node.name);
                added.push(NodeDef {
                    name: sub.clone(),
                    op: "Sub".into(),
                    input: node.input.clone(),
                    attr: node.attr.clone(),
                    ..Default::default()
                });
                node.op = "Square".into();
                node.input = vec![sub];
            }
            "Pad" | "PadV2" | "MirrorPad" => {
                let pads = node
                    .input
                    .get(1)
                    .and_then(|p| constants.ints(p))
                    .ok_or_else(|| fail("the paddings are not a constant".into()))?;
                if pads.len() % 2 != 0 || pads.iter().any(|p| *p < 0) {
                    return Err(fail(format!(
                        "paddings {pads:?} are not [rank, 2] of sizes"
                    )));
                }
                let mode = match node.op.as_str() {
                    "MirrorPad" => node.get_attr_str("mode").map_err(|e| fail(e.to_string()))?,
                    _ => "CONSTANT".into(),
                };
                let value = match node.op.as_str() {
                    "PadV2" => {
                        let v = node
                            .input
                            .get(2)
                            .and_then(|p| constants.get(p))
                            .ok_or_else(|| fail("the padding value is not a constant".into()))?;
                        v.cast_to_scalar::<f32>().map_err(|e| fail(e.to_string()))?
                    }
                    _ => 0.0,
                };
                node.input.truncate(1);
                node.op = PAD.into();
                node.attr.insert("pads".into(), AttrValue::from(pads));
                node.attr
                    .insert("mode".into(), AttrValue::from(mode.as_str()));
                node.attr.insert("value".into(), AttrValue::from(value));
            }
            "StridedSlice" => {
                if let Some(expand) = strided_new_axes(node, constants).map_err(fail)? {
                    added.extend(expand);
                }
            }
            _ => {}
        }
    }
    // Added nodes take over the names their consumers read: the slice with
    // new axes ends in ExpandDims nodes, the last of which is renamed to
    // the original name.
    constants.absorb(&added);
    graph.node.extend(added);
    Ok(())
}

/// Declutters `model` as tract does, unless tract's `ChangeAxes` pass
/// fails on it: then the same passes without that one (README, "Graphs
/// users bring": a convolution whose bias tract has reshaped to `[1, C]`
/// cannot lose its batch axis). Returns the declutter that worked, for the
/// later passes to run again.
pub fn declutter(model: &mut TypedModel) -> TractResult<Optimizer> {
    let original = model.clone();
    match Optimizer::declutter().optimize(model) {
        Ok(()) => Ok(Optimizer::declutter()),
        Err(e) if format!("{e:#}").contains("ChangeAxes") => {
            log::debug!("tract's ChangeAxes pass failed ({e:#}); decluttering without it");
            *model = original;
            let mut without = Optimizer::declutter();
            without
                .passes
                .retain(|p| !format!("{p:?}").contains("ChangeAxes"));
            without.optimize(model)?;
            Ok(without)
        }
        Err(e) => Err(e),
    }
}

/// Folds every inference batch norm that follows a convolution with
/// constant weights (`Conv2D` or `DepthwiseConv2dNative`, with or without
/// a `BiasAdd` between them) into that convolution: the weights scaled per
/// output channel, one `BiasAdd` with the folded shift, as TensorFlow's
/// own `optimize_for_inference` does: one pass over the activations
/// fewer, whatever tract's own passes make of them.
fn fold_batch_norms(graph: &mut GraphDef, constants: &mut Constants) -> TractResult<usize> {
    let mut uses: HashMap<String, usize> = HashMap::new();
    for node in &graph.node {
        for input in &node.input {
            *uses.entry(node_name(input).to_string()).or_default() += 1;
        }
    }
    let index: HashMap<String, usize> = graph
        .node
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    let mut edits: Vec<(usize, usize, Tensor, Tensor)> = Vec::new();
    for (bn_ix, bn) in graph.node.iter().enumerate() {
        if !bn.op.starts_with("FusedBatchNorm") || bn.input.len() != 5 {
            continue;
        }
        let only_used_once = |name: &str| uses.get(name) == Some(&1);
        let Some(&mut_ix) = index.get(node_name(&bn.input[0])) else {
            continue;
        };
        let (conv_ix, bias) = match graph.node[mut_ix].op.as_str() {
            "BiasAdd" => {
                let add = &graph.node[mut_ix];
                let Some(b) = add.input.get(1).and_then(|b| constants.get(b)) else {
                    continue;
                };
                let Some(&c) = add.input.first().and_then(|c| index.get(node_name(c))) else {
                    continue;
                };
                if !only_used_once(&add.name) {
                    continue;
                }
                (c, Some(b.cast_to::<f32>()?.into_owned()))
            }
            _ => (mut_ix, None),
        };
        let conv = &graph.node[conv_ix];
        let depthwise = match conv.op.as_str() {
            "Conv2D" => false,
            "DepthwiseConv2dNative" => true,
            _ => continue,
        };
        let nhwc = conv
            .get_attr_opt_str("data_format")
            .ok()
            .flatten()
            .is_none_or(|f| f == "NHWC");
        if !nhwc || !only_used_once(&conv.name) || conv.input.len() != 2 {
            continue;
        }
        let Some(filter) = constants.get(&conv.input[1]) else {
            continue;
        };
        let params: Option<Vec<Vec<f32>>> = bn.input[1..]
            .iter()
            .map(|i| {
                let t = constants.get(i)?.cast_to::<f32>().ok()?;
                Some(
                    t.to_plain_array_view::<f32>()
                        .ok()?
                        .iter()
                        .copied()
                        .collect(),
                )
            })
            .collect();
        let Some(params) = params else { continue };
        let (gamma, beta, mean, var) = (&params[0], &params[1], &params[2], &params[3]);
        let eps = bn.get_attr_opt_float::<f32>("epsilon")?.unwrap_or(1e-3);
        let channels = gamma.len();
        if [beta, mean, var].iter().any(|p| p.len() != channels) || filter.rank() != 4 {
            continue;
        }
        let shape = filter.shape().to_vec();
        let out_channels = if depthwise {
            shape[2] * shape[3]
        } else {
            shape[3]
        };
        if out_channels != channels {
            continue;
        }
        let scale: Vec<f32> = gamma
            .iter()
            .zip(var)
            .map(|(g, v)| g / (v + eps).sqrt())
            .collect();
        // HWIO, or HW C M for depthwise (output channel c * M + m): in
        // both, the output channel is the index modulo `channels` of the
        // flattened weights.
        let w: Vec<f32> = filter
            .cast_to::<f32>()?
            .to_plain_array_view::<f32>()?
            .iter()
            .enumerate()
            .map(|(i, x)| x * scale[i % channels])
            .collect();
        let w = Tensor::from_shape(&shape, &w)?;
        let b0 = match &bias {
            Some(b) if b.len() == channels => {
                b.to_plain_array_view::<f32>()?.iter().copied().collect()
            }
            Some(_) => continue,
            None => vec![0f32; channels],
        };
        let shift: Vec<f32> = (0..channels)
            .map(|c| (b0[c] - mean[c]) * scale[c] + beta[c])
            .collect();
        edits.push((
            bn_ix,
            conv_ix,
            w,
            tract_tensorflow::tract_hir::prelude::tensor1(&shift),
        ));
    }
    let folded = edits.len();
    for (bn_ix, conv_ix, w, shift) in edits {
        let conv_name = graph.node[conv_ix].name.clone();
        let filter = format!("{conv_name}/predictd_folded_filter");
        let bias = format!("{conv_name}/predictd_folded_bias");
        graph.node.push(constants.node(&filter, w)?);
        graph.node.push(constants.node(&bias, shift)?);
        graph.node[conv_ix].input[1] = filter;
        let bn = &mut graph.node[bn_ix];
        bn.op = "BiasAdd".into();
        bn.input = vec![conv_name, bias];
        bn.attr.clear();
        bn.attr
            .insert("T".into(), AttrValue::from(DataType::DtFloat));
    }
    Ok(folded)
}

/// A `NodeDef` holding `t` as a constant.
fn const_node(name: &str, t: &Tensor) -> TractResult<NodeDef> {
    let proto = TensorProto::try_from(t)?;
    let dtype = DataType::try_from(t.datum_type())?;
    let mut node = NodeDef {
        name: name.into(),
        op: "Const".into(),
        ..Default::default()
    };
    node.attr.insert("dtype".into(), AttrValue::from(dtype));
    node.attr.insert("value".into(), AttrValue::from(proto));
    Ok(node)
}

/// A `StridedSlice` with `new_axis_mask` (`x[:, tf.newaxis]`) is rewritten
/// as the same slice without the new axes, followed by one `ExpandDims`
/// per new axis; the last takes the node's name. An ellipsis is allowed
/// only as the last index (where it means "the rest, whole").
fn strided_new_axes(
    node: &mut NodeDef,
    constants: &Constants,
) -> Result<Option<Vec<NodeDef>>, String> {
    let mask = |k: &str| node.get_attr_opt_int::<i64>(k).ok().flatten().unwrap_or(0);
    let (new_axis, ellipsis) = (mask("new_axis_mask"), mask("ellipsis_mask"));
    if new_axis == 0 && ellipsis == 0 {
        return Ok(None);
    }
    if node.input.len() != 4 {
        return Err("StridedSlice without begin, end and strides".into());
    }
    let vector = |i: usize| -> Result<Vec<i64>, String> {
        constants
            .ints(&node.input[i])
            .ok_or_else(|| "begin, end and strides must be constants".to_string())
    };
    let (begin, end, strides) = (vector(1)?, vector(2)?, vector(3)?);
    let n = begin.len();
    if ellipsis != 0 && ellipsis != 1 << (n - 1) {
        return Err("an ellipsis before the last index is not supported".into());
    }
    let (mut b, mut e, mut s) = (Vec::new(), Vec::new(), Vec::new());
    let (mut begin_mask, mut end_mask, mut shrink) = (0i64, 0i64, 0i64);
    let mut new_dims = Vec::new();
    let mut out_axis = 0i64;
    for j in 0..n {
        let bit = 1i64 << j;
        if ellipsis & bit != 0 {
            continue;
        }
        if new_axis & bit != 0 {
            new_dims.push(out_axis);
            out_axis += 1;
            continue;
        }
        let k = b.len() as i64;
        b.push(begin[j]);
        e.push(end[j]);
        s.push(strides[j]);
        if mask("begin_mask") & bit != 0 {
            begin_mask |= 1 << k;
        }
        if mask("end_mask") & bit != 0 {
            end_mask |= 1 << k;
        }
        if mask("shrink_axis_mask") & bit != 0 {
            shrink |= 1 << k;
        } else {
            out_axis += 1;
        }
    }
    let name = node.name.clone();
    let sliced = format!("{name}/predictd_slice");
    let mut added = Vec::new();
    for (i, values) in [b, e, s].into_iter().enumerate() {
        let t = tract_tensorflow::tract_hir::prelude::tensor1(
            &values.iter().map(|v| *v as i32).collect::<Vec<_>>(),
        );
        let cname = format!("{sliced}/{}", ["begin", "end", "strides"][i]);
        added.push(const_node(&cname, &t).map_err(|e| e.to_string())?);
        node.input[i + 1] = cname;
    }
    node.name = sliced.clone();
    node.attr
        .insert("begin_mask".into(), AttrValue::from(begin_mask));
    node.attr
        .insert("end_mask".into(), AttrValue::from(end_mask));
    node.attr
        .insert("shrink_axis_mask".into(), AttrValue::from(shrink));
    node.attr
        .insert("new_axis_mask".into(), AttrValue::from(0i64));
    node.attr
        .insert("ellipsis_mask".into(), AttrValue::from(0i64));
    let mut from = sliced;
    for (k, dim) in new_dims.iter().enumerate() {
        let axis = format!("{name}/predictd_axis{k}");
        added.push(
            const_node(
                &axis,
                &tract_tensorflow::tract_hir::prelude::tensor0(*dim as i32),
            )
            .map_err(|e| e.to_string())?,
        );
        let out = if k + 1 == new_dims.len() {
            name.clone()
        } else {
            format!("{name}/predictd_expand{k}")
        };
        let mut expand = NodeDef {
            name: out.clone(),
            op: "ExpandDims".into(),
            input: vec![from, axis],
            ..Default::default()
        };
        expand
            .attr
            .insert("T".into(), AttrValue::from(DataType::DtFloat));
        added.push(expand);
        from = out;
    }
    if new_dims.is_empty() {
        // Only a trailing ellipsis: the slice keeps its name.
        node.name = name;
    }
    Ok(Some(added))
}

/// TF 2.x writes all-zero constants (`tf.zeros`, slice begins) as a shape
/// with no values at all, which TensorFlow reads as zeros and tract refuses.
/// One explicit zero is read by tract as "repeat this value".
fn fill_empty_constants(graph: &mut GraphDef) {
    for node in graph.node.iter_mut().filter(|n| n.op == "Const") {
        let Some(value) = node.attr.get_mut("value") else {
            continue;
        };
        let Some(Value::Tensor(t)) = value.value.as_mut() else {
            continue;
        };
        let elements: i64 = t
            .tensor_shape
            .as_ref()
            .map(|s| s.dim.iter().map(|d| d.size).product())
            .unwrap_or(1);
        if !t.tensor_content.is_empty() || elements == 0 {
            continue;
        }
        match DataType::try_from(t.dtype) {
            Ok(DataType::DtFloat) if t.float_val.is_empty() => t.float_val.push(0.0),
            Ok(DataType::DtDouble) if t.double_val.is_empty() => t.double_val.push(0.0),
            Ok(DataType::DtInt32) if t.int_val.is_empty() => t.int_val.push(0),
            Ok(DataType::DtInt64) if t.int64_val.is_empty() => t.int64_val.push(0),
            _ => {}
        }
    }
}

/// `GatherV2` with int32 or int64 indices. (tract-tensorflow's own
/// requires int32 indices, which tract's gather then refuses when it folds
/// the shape arithmetic of Keras' Tensordot: the indices are cast here.)
#[derive(Debug, Clone)]
struct GatherV2;

impl Expansion for GatherV2 {
    fn name(&self) -> StaticName {
        "GatherV2".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 3)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[2].rank, 0)?;
        s.given_3(
            &inputs[0].shape,
            &inputs[1].shape,
            &inputs[2].value,
            move |s, input_shape, indices_shape, axis| {
                let axis = axis.cast_to_scalar::<i64>()?;
                let op = tract_tensorflow::tract_hir::ops::array::Gather::new(axis);
                let output_shape = op
                    .to_type_op(input_shape.len())
                    .compute_output_shape(&input_shape, &indices_shape)?;
                s.equals(&outputs[0].shape, output_shape)
            },
        )
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let Some(axis) = model.outlet_fact(inputs[2])?.konst.clone() else {
            bail!("GatherV2 needs a constant axis");
        };
        let axis = axis.cast_to_scalar::<i64>()?;
        let rank = model.outlet_fact(inputs[0])?.rank();
        let mut indices = inputs[1];
        if model.outlet_fact(indices)?.datum_type != i64::datum_type() {
            indices = model.wire_node(
                format!("{prefix}.indices"),
                tract_tensorflow::tract_core::ops::cast::cast(i64::datum_type()),
                &[indices],
            )?[0];
        }
        let op = tract_tensorflow::tract_hir::ops::array::Gather::new(axis).to_type_op(rank);
        model.wire_node(prefix, op, &[inputs[0], indices])
    }
}

/// Finds each `Conv2D` whose constant filter reads fewer channels than its
/// input has: a grouped convolution, as Keras 2.15 writes `Conv2D(groups=G)`
/// (ConvNeXt's 7x7 depthwise convolutions among them). One input channel
/// per group is a depthwise convolution, and becomes one
/// (`DepthwiseConv2dNative`, its filter reordered); more are refused by
/// name. The input's channels are worked out from the nodes before it
/// (what a convolution, bias, batch norm or concatenation produces,
/// carried through element-wise ops).
fn mark_grouped_convolutions(
    graph: &mut GraphDef,
    constants: &mut Constants,
) -> Result<(), ImportError> {
    let by_name: HashMap<&str, &NodeDef> =
        graph.node.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut memo: HashMap<String, Option<usize>> = HashMap::new();
    let mut groups = Vec::new();
    for (i, node) in graph.node.iter().enumerate() {
        if node.op != "Conv2D" || node.input.len() != 2 {
            continue;
        }
        let Some(filter) = constants.get(&node.input[1]) else {
            continue;
        };
        if filter.rank() != 4 {
            continue;
        }
        let per_group = filter.shape()[2];
        let outputs = filter.shape()[3];
        let channels = channels_of(&node.input[0], &by_name, &constants, &mut memo, 0);
        let Some(c) = channels else { continue };
        if c == per_group || per_group == 0 || c % per_group != 0 || outputs % (c / per_group) != 0
        {
            continue;
        }
        if per_group != 1 {
            return Err(ImportError::Node {
                node: node.name.clone(),
                op: node.op.clone(),
                why: format!(
                    "a grouped convolution ({} groups of {per_group} channels): only one \
                     channel per group (depthwise) is supported",
                    c / per_group
                ),
            });
        }
        let Ok(filter) = filter.cast_to::<f32>() else {
            continue;
        };
        let Ok(f) = filter.to_plain_array_view::<f32>() else {
            continue;
        };
        let (h, w, g) = (filter.shape()[0], filter.shape()[1], c / per_group);
        let out_per_group = outputs / g;
        // TensorFlow's grouped filter f[h, w, 0, o] with o = c * M + m;
        // depthwise: k[h, w, c, m].
        let k = tract_ndarray::Array4::from_shape_fn((h, w, c, out_per_group), |(y, x, ch, o)| {
            let group = ch / per_group;
            f[[y, x, ch % per_group, group * out_per_group + o]]
        });
        groups.push((
            i,
            format!("{}/predictd_depthwise_filter", node.name),
            Tensor::from(k),
        ));
    }
    for (i, name, k) in groups {
        let Ok(k) = constants.node(&name, k) else {
            continue;
        };
        let node = &mut graph.node[i];
        node.input[1] = k.name.clone();
        node.op = "DepthwiseConv2dNative".into();
        graph.node.push(k);
    }
    Ok(())
}

/// The size of the last axis of `input`'s tensor, when the graph says.
fn channels_of(
    input: &str,
    by_name: &HashMap<&str, &NodeDef>,
    constants: &Constants,
    memo: &mut HashMap<String, Option<usize>>,
    depth: usize,
) -> Option<usize> {
    let name = node_name(input);
    if let Some(known) = memo.get(name) {
        return *known;
    }
    if depth > 200 {
        return None;
    }
    let node = by_name.get(name)?;
    let last = |t: &Tensor| (t.rank() > 0).then(|| t.shape()[t.rank() - 1]);
    let konst = |i: usize| node.input.get(i).and_then(|x| constants.get(x));
    let found = match node.op.as_str() {
        "Const" => constants.get(name).and_then(last),
        "Placeholder" => node
            .get_attr_opt_shape("shape")
            .ok()
            .flatten()
            .and_then(|s| s.last().copied())
            .filter(|d| *d > 0)
            .map(|d| d as usize),
        "Conv2D" | "MatMul" => konst(1).and_then(last),
        "DepthwiseConv2dNative" => konst(1)
            .filter(|f| f.rank() == 4)
            .map(|f| f.shape()[2] * f.shape()[3]),
        "BiasAdd" => konst(1).and_then(last),
        op if op.starts_with("FusedBatchNorm") => konst(1).and_then(last),
        "ConcatV2" => {
            let n = node.input.len().saturating_sub(1);
            let axis = node
                .input
                .last()
                .and_then(|a| constants.get(a))
                .and_then(|a| a.cast_to_scalar::<i64>().ok());
            let values: Vec<String> = node.input[..n].to_vec();
            let each: Option<Vec<usize>> = values
                .iter()
                .map(|v| channels_of(v, by_name, constants, memo, depth + 1))
                .collect();
            match axis {
                Some(3) | Some(-1) => each.map(|e| e.iter().sum()),
                _ => each.and_then(|e| e.first().copied()),
            }
        }
        "Add" | "AddV2" | "Sub" | "Mul" | "RealDiv" | "Maximum" | "Minimum" | "Relu" | "Relu6"
        | "Sigmoid" | "Tanh" | "Identity" | "Erf" | "Square" | "Sqrt" | "Rsqrt" | "Exp" | "Neg"
        | "Abs" | "MaxPool" | "AvgPool" | PAD => {
            let inputs: Vec<String> = node.input.to_vec();
            inputs
                .iter()
                .filter(|i| constants.get(i).is_none_or(|t| t.len() > 1))
                .filter_map(|i| channels_of(i, by_name, constants, memo, depth + 1))
                .max()
        }
        _ => None,
    };
    memo.insert(name.to_string(), found);
    found
}

/// `PredictdPad`: the paddings carried as attributes by [`rewrite`].
fn pad(
    _: &tract_tensorflow::model::ParsingContext,
    node: &NodeDef,
) -> TractResult<Box<dyn InferenceOp>> {
    let flat: Vec<i64> = match node.attr.get("pads").and_then(|a| a.value.as_ref()) {
        Some(Value::List(ListValue { i, .. })) => i.clone(),
        _ => bail!("{}: paddings missing", node.name),
    };
    let pads = flat
        .chunks(2)
        .map(|p| (p[0] as usize, p[1] as usize))
        .collect();
    let mode = match node.get_attr_str("mode")?.as_str() {
        "CONSTANT" => {
            let value = node.get_attr_float::<f32>("value")?;
            PadMode::Constant(Arc::new(Tensor::from(value)))
        }
        "REFLECT" => PadMode::Reflect,
        "SYMMETRIC" => bail!("{}: MirrorPad mode SYMMETRIC is not supported", node.name),
        other => bail!("{}: unknown pad mode {other}", node.name),
    };
    Ok(Box::new(Pad::new(pads, mode)))
}

fn lrn(
    _: &tract_tensorflow::model::ParsingContext,
    node: &NodeDef,
) -> TractResult<Box<dyn InferenceOp>> {
    Ok(expand(Lrn {
        radius: node.get_attr_opt_int::<usize>("depth_radius")?.unwrap_or(5),
        bias: node.get_attr_opt_float::<f32>("bias")?.unwrap_or(1.0),
        alpha: node.get_attr_opt_float::<f32>("alpha")?.unwrap_or(1.0),
        beta: node.get_attr_opt_float::<f32>("beta")?.unwrap_or(0.5),
    }))
}

/// TensorFlow's local response normalization over the channels of an
/// NHWC tensor: `x / (bias + alpha * sum(x[c-r..=c+r]^2)) ^ beta`. The sum
/// over the window is a product with a banded C x C matrix of ones.
#[derive(Debug, Clone)]
struct Lrn {
    radius: usize,
    bias: f32,
    alpha: f32,
    beta: f32,
}

impl Expansion for Lrn {
    fn name(&self) -> StaticName {
        "LRN".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].rank, 4)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        use tract_tensorflow::tract_core::ops::einsum::EinSum;
        use tract_tensorflow::tract_core::ops::math;
        let channels = model.outlet_fact(inputs[0])?.shape[3].to_usize()?;
        let band = tract_ndarray::Array2::from_shape_fn((channels, channels), |(i, j)| {
            if i.abs_diff(j) <= self.radius {
                1f32
            } else {
                0f32
            }
        });
        let band = model.add_const(format!("{prefix}.band"), Tensor::from(band))?;
        let squares = model.wire_node(format!("{prefix}.square"), math::square(), &[inputs[0]])?;
        let sums = model.wire_node(
            format!("{prefix}.sum"),
            EinSum::new("abcd,de->abce".parse()?, f32::datum_type()),
            &[squares[0], band],
        )?;
        let scalar = |model: &mut TypedModel, name: &str, v: f32| {
            model.add_const(
                format!("{prefix}.{name}"),
                tensor0(v).into_shape(&[1, 1, 1, 1]).unwrap(),
            )
        };
        let alpha = scalar(model, "alpha", self.alpha)?;
        let bias = scalar(model, "bias", self.bias)?;
        let beta = scalar(model, "beta", self.beta)?;
        let scaled = model.wire_node(format!("{prefix}.scaled"), math::mul(), &[sums[0], alpha])?;
        let shifted =
            model.wire_node(format!("{prefix}.shifted"), math::add(), &[scaled[0], bias])?;
        let powered = model.wire_node(format!("{prefix}.pow"), math::pow(), &[shifted[0], beta])?;
        model.wire_node(
            format!("{prefix}.div"),
            math::div(),
            &[inputs[0], powered[0]],
        )
    }
}
