//! Inference batch norms folded into the convolutions before them.

use std::collections::HashMap;
use tract_tensorflow::tfpb::tensorflow::{AttrValue, DataType, GraphDef, NodeDef};
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
    let wiring = Wiring::of(graph);
    let mut edits = Vec::new();
    for bn_ix in 0..graph.node.len() {
        if let Some(fold) = fold_of(graph, bn_ix, &wiring, constants)? {
            edits.push(fold);
        }
    }
    let folded = edits.len();
    for fold in edits {
        apply(graph, constants, fold)?;
    }
    Ok(folded)
}

/// One batch norm to fold into the convolution before it.
struct Fold {
    /// The batch norm's position in the graph.
    bn: usize,
    /// The convolution's position in the graph.
    conv: usize,
    /// The convolution's filter, scaled per output channel.
    filter: Tensor,
    /// What the batch norm (and the bias before it) add per channel.
    shift: Tensor,
}

/// Where each node is in the graph, and how many inputs read it.
struct Wiring {
    uses: HashMap<String, usize>,
    index: HashMap<String, usize>,
}

impl Wiring {
    fn of(graph: &GraphDef) -> Wiring {
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
        Wiring { uses, index }
    }

    /// Whether exactly one input of the graph reads the node `name`.
    fn used_once(&self, name: &str) -> bool {
        self.uses.get(name) == Some(&1)
    }

    /// The position in the graph of the node `input` reads.
    fn producer(&self, input: &str) -> Option<usize> {
        self.index.get(node_name(input)).copied()
    }
}

/// How the batch norm at `bn_ix` folds into the convolution before it,
/// when it is an inference batch norm after one that can take it.
fn fold_of(
    graph: &GraphDef,
    bn_ix: usize,
    wiring: &Wiring,
    constants: &Constants,
) -> TractResult<Option<Fold>> {
    let bn = &graph.node[bn_ix];
    if !bn.op.starts_with("FusedBatchNorm") || bn.input.len() != 5 {
        return Ok(None);
    }
    let Some((conv_ix, bias)) = convolution_before(graph, bn, wiring, constants)? else {
        return Ok(None);
    };
    let conv = &graph.node[conv_ix];
    let Some(depthwise) = foldable_convolution(conv, wiring) else {
        return Ok(None);
    };
    let Some(filter) = constants.get(&conv.input[1]) else {
        return Ok(None);
    };
    let Some(params) = batch_norm_params(bn, constants) else {
        return Ok(None);
    };
    let eps = bn.get_attr_opt_float::<f32>("epsilon")?.unwrap_or(1e-3);
    let Some((filter, shift)) = folded(filter, depthwise, &params, eps, bias.as_ref())? else {
        return Ok(None);
    };
    Ok(Some(Fold {
        bn: bn_ix,
        conv: conv_ix,
        filter,
        shift,
    }))
}

/// The position of the node `bn` reads (the convolution, if any); when
/// that is a `BiasAdd` of a constant that nothing but `bn` reads, the
/// position of the node before it, with the constant as f32.
fn convolution_before(
    graph: &GraphDef,
    bn: &NodeDef,
    wiring: &Wiring,
    constants: &Constants,
) -> TractResult<Option<(usize, Option<Tensor>)>> {
    let Some(mut_ix) = wiring.producer(&bn.input[0]) else {
        return Ok(None);
    };
    let add = &graph.node[mut_ix];
    if add.op != "BiasAdd" {
        return Ok(Some((mut_ix, None)));
    }
    let Some(b) = add.input.get(1).and_then(|b| constants.get(b)) else {
        return Ok(None);
    };
    let Some(c) = add.input.first().and_then(|c| wiring.producer(c)) else {
        return Ok(None);
    };
    if !wiring.used_once(&add.name) {
        return Ok(None);
    }
    Ok(Some((c, Some(b.cast_to::<f32>()?.into_owned()))))
}

/// Whether `conv` is depthwise, when it is an NHWC convolution of two
/// inputs whose output only one input reads.
fn foldable_convolution(conv: &NodeDef, wiring: &Wiring) -> Option<bool> {
    let depthwise = match conv.op.as_str() {
        "Conv2D" => false,
        "DepthwiseConv2dNative" => true,
        _ => return None,
    };
    let nhwc = conv
        .get_attr_opt_str("data_format")
        .ok()
        .flatten()
        .is_none_or(|f| f == "NHWC");
    if !nhwc || !wiring.used_once(&conv.name) || conv.input.len() != 2 {
        return None;
    }
    Some(depthwise)
}

/// The batch norm's scale, offset, mean and variance as f32s, when all
/// four are constants.
fn batch_norm_params(bn: &NodeDef, constants: &Constants) -> Option<Vec<Vec<f32>>> {
    bn.input[1..]
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
        .collect()
}

/// The scaled filter and the shift that fold the batch norm of `params`
/// (scale, offset, mean, variance) and `eps` into a convolution of
/// `filter` with `bias` after it, when their channels agree.
fn folded(
    filter: &Tensor,
    depthwise: bool,
    params: &[Vec<f32>],
    eps: f32,
    bias: Option<&Tensor>,
) -> TractResult<Option<(Tensor, Tensor)>> {
    let (gamma, beta, mean, var) = (&params[0], &params[1], &params[2], &params[3]);
    let channels = gamma.len();
    if [beta, mean, var].iter().any(|p| p.len() != channels) || filter.rank() != 4 {
        return Ok(None);
    }
    let shape = filter.shape().to_vec();
    let out_channels = if depthwise {
        shape[2] * shape[3]
    } else {
        shape[3]
    };
    if out_channels != channels {
        return Ok(None);
    }
    let scale: Vec<f32> = gamma
        .iter()
        .zip(var)
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    let w = scaled_filter(filter, &scale)?;
    let b0 = match bias {
        Some(b) if b.len() == channels => b.to_plain_array_view::<f32>()?.iter().copied().collect(),
        Some(_) => return Ok(None),
        None => vec![0f32; channels],
    };
    let shift: Vec<f32> = (0..channels)
        .map(|c| (b0[c] - mean[c]) * scale[c] + beta[c])
        .collect();
    Ok(Some((
        w,
        tract_tensorflow::tract_hir::prelude::tensor1(&shift),
    )))
}

/// `filter` with each output channel's weights multiplied by its `scale`.
fn scaled_filter(filter: &Tensor, scale: &[f32]) -> TractResult<Tensor> {
    let channels = scale.len();
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
    Tensor::from_shape(filter.shape(), &w)
}

/// Makes the convolution read the folded filter, and the batch norm a
/// `BiasAdd` of the folded shift to the convolution.
fn apply(graph: &mut GraphDef, constants: &mut Constants, fold: Fold) -> TractResult<()> {
    let conv_name = graph.node[fold.conv].name.clone();
    let filter = format!("{conv_name}/predictd_folded_filter");
    let bias = format!("{conv_name}/predictd_folded_bias");
    graph.node.push(constants.node(&filter, fold.filter)?);
    graph.node.push(constants.node(&bias, fold.shift)?);
    graph.node[fold.conv].input[1] = filter;
    let bn = &mut graph.node[fold.bn];
    bn.op = "BiasAdd".into();
    bn.input = vec![conv_name, bias];
    bn.attr.clear();
    bn.attr
        .insert("T".into(), AttrValue::from(DataType::DtFloat));
    Ok(())
}
