//! Inference batch norms folded into the convolutions before them.

use std::collections::HashMap;
use tract_tensorflow::tfpb::tensorflow::{AttrValue, DataType, GraphDef};
use tract_tensorflow::tract_hir::internal::*;

use super::constants::Constants;
use super::node_name;

/// Folds every inference batch norm that follows a convolution with
/// constant weights (`Conv2D` or `DepthwiseConv2dNative`, with or without
/// a `BiasAdd` between them) into that convolution: the weights scaled per
/// output channel, one `BiasAdd` with the folded shift, as TensorFlow's
/// own `optimize_for_inference` does: one pass over the activations
/// fewer, whatever tract's own passes make of them.
pub(super) fn fold_batch_norms(
    graph: &mut GraphDef,
    constants: &mut Constants,
) -> TractResult<usize> {
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
