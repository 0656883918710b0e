//! Grouped convolutions with one input channel per group, as depthwise
//! convolutions.

use std::collections::HashMap;
use tract_tensorflow::tfpb::tensorflow::{GraphDef, NodeDef};
use tract_tensorflow::tract_hir::internal::*;

use super::constants::Constants;
use super::ops::PAD;
use super::{node_name, ImportError};

/// Finds each `Conv2D` whose constant filter reads fewer channels than its
/// input has: a grouped convolution, as Keras 2.15 writes `Conv2D(groups=G)`
/// (ConvNeXt's 7x7 depthwise convolutions among them). One input channel
/// per group is a depthwise convolution, and becomes one
/// (`DepthwiseConv2dNative`, its filter reordered); more are refused by
/// name. The input's channels are worked out from the nodes before it
/// (what a convolution, bias, batch norm or concatenation produces,
/// carried through element-wise ops).
pub(super) fn mark_grouped_convolutions(
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
