//! Reading the frozen graphs TensorFlow 1.x and 2.x write for image models.
//!
//! tract-tensorflow covers the core of a frozen graph; what users bring
//! also holds the spellings of other years and the leftovers of freezing.
//! This module closes that gap before tract sees the graph.
//!
//! [`prepare`] edits the `GraphDef` itself, in this order:
//!
//! 1. the function calls `convert_variables_to_constants_v2` leaves
//!    (`PartitionedCall`, `StatefulPartitionedCall`) are replaced by the
//!    functions' bodies (`functions`);
//! 2. the graph is cut at the configured input (a `Mul` after
//!    `DecodeJpeg`, as in `retrain.py` graphs, becomes a placeholder),
//!    `IdentityN` is passed through, and the graph is pruned to what the
//!    output needs (`prune`);
//! 3. the all-zero constants TF 2.x writes without values get one value
//!    (`constants`, which also reads the constants for the passes after);
//! 4. old spellings are rewritten into ones tract knows (`spellings`): the
//!    leftovers of freezing (`StopGradient`, ...) become plain identities,
//!    `Concat` v1 becomes `ConcatV2`, `BatchNormWithGlobalNormalization`
//!    becomes `FusedBatchNorm`, `SquaredDifference` becomes `Sub` and
//!    `Square`, paddings read from their constants are carried on the node
//!    (`Pad`, `PadV2`, `MirrorPad`, int32 or int64), and `StridedSlice`'s
//!    new axes become `ExpandDims` (`strided`);
//! 5. grouped convolutions with one input channel per group become
//!    depthwise ones (`grouped`);
//! 6. batch norms after a convolution with constant weights are folded
//!    into it (`batch_norm`);
//! 7. every op left that the framework does not translate is named, all
//!    at once ([`unsupported`], also for `predictd check` and `predictd
//!    inspect`).
//!
//! [`framework`] adds the ops tract lacks to its op table (`Sqrt`,
//! `Square`, `Exp`, `Erf`, `LRN`, the pads, every `FusedBatchNorm`
//! version; those predictd implements are in `ops`). [`declutter`] runs
//! tract's declutter on the model, around a pass that fails on some of
//! these graphs.

mod batch_norm;
mod constants;
mod functions;
mod grouped;
mod ops;
mod prune;
mod spellings;
mod strided;

use std::collections::BTreeMap;
use tract_tensorflow::tfpb::tensorflow::GraphDef;
use tract_tensorflow::tract_core::optim::Optimizer;
use tract_tensorflow::tract_hir::internal::*;
use tract_tensorflow::Tensorflow;

use batch_norm::fold_batch_norms;
use constants::{fill_empty_constants, Constants};
use functions::inline_functions;
use grouped::mark_grouped_convolutions;
use ops::{lrn, pad, GatherV2, PAD};
use prune::{bypass_identity_n, cut_at_input, prune};
use spellings::rewrite;

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

pub(super) fn slot_of(input: &str) -> usize {
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

/// Declutters `model` as tract does, unless tract's `ChangeAxes` pass
/// fails on it: then the same passes without that one (docs/configuration.md, "Graphs
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
