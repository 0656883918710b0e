//! Old spellings rewritten into ones tract knows, and ops freezing leaves
//! made identities.

use tract_tensorflow::tfpb::tensorflow::{AttrValue, DataType, GraphDef, NodeDef};
use tract_tensorflow::tract_hir::internal::*;

use super::constants::{const_node, Constants};
use super::ops::PAD;
use super::strided::strided_new_axes;
use super::ImportError;

/// Ops that only pass their first input on at inference.
const PASS_THROUGH: &[&str] = &[
    "StopGradient",
    "PreventGradient",
    "Snapshot",
    "CheckNumerics",
    "EnsureShape",
    "PlaceholderWithDefault",
];

/// Rewrites every node of `graph` spelled in a way tract does not read
/// into one it does (see the module doc); the constants it makes join
/// `constants`.
pub(super) fn rewrite(graph: &mut GraphDef, constants: &mut Constants) -> Result<(), ImportError> {
    let mut added = Vec::new();
    for node in graph.node.iter_mut() {
        let (name, op) = (node.name.clone(), node.op.clone());
        respell(node, constants, &mut added).map_err(|why| ImportError::Node {
            node: name,
            op,
            why,
        })?;
    }
    // Added nodes take over the names their consumers read: the slice with
    // new axes ends in ExpandDims nodes, the last of which is renamed to
    // the original name.
    constants.absorb(&added);
    graph.node.extend(added);
    Ok(())
}

/// Rewrites `node` if tract knows its op by another spelling; the nodes
/// the new spelling needs are pushed on `added`.
fn respell(
    node: &mut NodeDef,
    constants: &Constants,
    added: &mut Vec<NodeDef>,
) -> Result<(), String> {
    match node.op.as_str() {
        op if PASS_THROUGH.contains(&op) => {
            node.op = "Identity".into();
            node.input.truncate(1);
        }
        "Concat" => concat_v1(node)?,
        "FusedBatchNorm" | "FusedBatchNormV2" | "FusedBatchNormV3" => check_batch_norm(node)?,
        "BatchNormWithGlobalNormalization" => global_batch_norm(node, constants, added)?,
        "SquaredDifference" => added.push(squared_difference(node)),
        "Pad" | "PadV2" | "MirrorPad" => padding_attributes(node, constants)?,
        "StridedSlice" => {
            if let Some(expand) = strided_new_axes(node, constants)? {
                added.extend(expand);
            }
        }
        _ => {}
    }
    Ok(())
}

/// `Concat` v1 (the axis first, then the values) as `ConcatV2`.
fn concat_v1(node: &mut NodeDef) -> Result<(), String> {
    if node.input.len() < 2 {
        return Err("fewer than two inputs".into());
    }
    node.input.rotate_left(1);
    node.op = "ConcatV2".into();
    node.attr
        .insert("Tidx".into(), AttrValue::from(DataType::DtInt32));
    Ok(())
}

/// Refuses a `FusedBatchNorm` frozen for training, or not NHWC.
fn check_batch_norm(node: &NodeDef) -> Result<(), String> {
    if node.get_attr_opt_bool("is_training").ok().flatten() == Some(true) {
        return Err("is_training is true: freeze the graph for inference \
                    (Keras: training=False; TF1: is_training=False)"
            .into());
    }
    let format = node.get_attr_opt_str("data_format").ok().flatten();
    if format.as_deref().is_some_and(|f| f != "NHWC") {
        return Err(format!("data_format {format:?}: only NHWC is served"));
    }
    Ok(())
}

/// `BatchNormWithGlobalNormalization` as `FusedBatchNorm`; without
/// `scale_after_normalization`, its scale is a constant of ones pushed on
/// `added`.
fn global_batch_norm(
    node: &mut NodeDef,
    constants: &Constants,
    added: &mut Vec<NodeDef>,
) -> Result<(), String> {
    // Inputs t, mean, variance, beta, gamma; FusedBatchNorm
    // takes x, scale, offset, mean, variance.
    if node.input.len() != 5 {
        return Err(format!("{} inputs instead of 5", node.input.len()));
    }
    let eps = node
        .get_attr_float::<f32>("variance_epsilon")
        .map_err(|e| e.to_string())?;
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
            .ok_or_else(|| "beta is not a constant".to_string())?;
        let ones = Tensor::from(tract_ndarray::Array1::<f32>::ones(beta.len()));
        let name = format!("{}/predictd_ones", node.name);
        added.push(const_node(&name, &ones).map_err(|e| e.to_string())?);
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
    Ok(())
}

/// `SquaredDifference` as the `Square` of a `Sub`: `node` becomes the
/// square, and the `Sub` it reads is returned.
fn squared_difference(node: &mut NodeDef) -> NodeDef {
    let sub = format!("{}/predictd_sub", node.name);
    let difference = NodeDef {
        name: sub.clone(),
        op: "Sub".into(),
        input: node.input.clone(),
        attr: node.attr.clone(),
        ..Default::default()
    };
    node.op = "Square".into();
    node.input = vec![sub];
    difference
}

/// `Pad`, `PadV2` and `MirrorPad` as [`PAD`], their paddings, mode and
/// value read from their constants into attributes.
fn padding_attributes(node: &mut NodeDef, constants: &Constants) -> Result<(), String> {
    let pads = node
        .input
        .get(1)
        .and_then(|p| constants.ints(p))
        .ok_or_else(|| "the paddings are not a constant".to_string())?;
    if pads.len() % 2 != 0 || pads.iter().any(|p| *p < 0) {
        return Err(format!("paddings {pads:?} are not [rank, 2] of sizes"));
    }
    let mode = match node.op.as_str() {
        "MirrorPad" => node.get_attr_str("mode").map_err(|e| e.to_string())?,
        _ => "CONSTANT".into(),
    };
    let value = match node.op.as_str() {
        "PadV2" => {
            let v = node
                .input
                .get(2)
                .and_then(|p| constants.get(p))
                .ok_or_else(|| "the padding value is not a constant".to_string())?;
            v.cast_to_scalar::<f32>().map_err(|e| e.to_string())?
        }
        _ => 0.0,
    };
    node.input.truncate(1);
    node.op = PAD.into();
    node.attr.insert("pads".into(), AttrValue::from(pads));
    node.attr
        .insert("mode".into(), AttrValue::from(mode.as_str()));
    node.attr.insert("value".into(), AttrValue::from(value));
    Ok(())
}
