//! Graph rewrites predictd applies to every graph it loads, between tract's
//! declutter and its optimizer.
//!
//! tract folds a per-channel add or multiply that follows a convolution into
//! the convolution's bias and kernel, but not for grouped convolutions
//! (`Conv::declutter_channel_arithmetic_succ` needs `group == 1`). Every
//! depthwise convolution of a TensorFlow graph is followed by a `BiasAdd` (and
//! often a batch-norm scale): left alone, each runs as a broadcasting
//! `[H,W,C] + [C]` pass of its own, a quarter of the theme CNN's time. Here
//! they become the depthwise op's own bias, which its kernel adds for free,
//! and the ReLU6 after them then follows the convolution directly.

use tract_tensorflow::prelude::*;
use tract_tensorflow::tract_core::ops::binary::TypedBinOp;
use tract_tensorflow::tract_core::ops::cnn::conv::Conv;
use tract_tensorflow::tract_core::ops::cnn::PaddingSpec;
use tract_tensorflow::tract_core::ops::einsum::EinSum;
use tract_tensorflow::tract_core::ops::math::{Add, Max, Min, Mul};
use tract_tensorflow::tract_core::ops::nn::DataFormat;

/// Folds every per-channel constant `Add` or `Mul` that is the only consumer
/// of a depthwise convolution into that convolution; returns how many.
pub fn fold_depthwise_channel_ops(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_all(model, fold_one)
}

/// Applies `rewrite` wherever it offers a patch, until it offers none;
/// returns how many patches were applied.
pub(super) fn rewrite_all(
    model: &mut TypedModel,
    rewrite: fn(&TypedModel, usize) -> TractResult<Option<TypedModelPatch>>,
) -> TractResult<usize> {
    let mut applied = 0;
    'again: loop {
        for id in model.eval_order()? {
            if let Some(patch) = rewrite(model, id)? {
                patch.apply(model)?;
                applied += 1;
                continue 'again;
            }
        }
        break;
    }
    if applied > 0 {
        model.compact()?;
    }
    Ok(applied)
}

/// The only consumer of node `id`'s output when it is a binary operation
/// (and `id`'s output is not a model output): that node, its op, and the
/// input slot `id` feeds.
fn sole_binary_successor(
    model: &TypedModel,
    id: usize,
) -> TractResult<Option<(&TypedNode, &TypedBinOp, usize)>> {
    let node = model.node(id);
    if node.outputs[0].successors.len() != 1
        || model.output_outlets()?.contains(&OutletId::new(id, 0))
    {
        return Ok(None);
    }
    let succ_outlet = node.outputs[0].successors[0];
    let succ = model.node(succ_outlet.node);
    match succ.op_as::<TypedBinOp>() {
        Some(bin) if succ.inputs.len() == 2 => Ok(Some((succ, bin, succ_outlet.slot))),
        _ => Ok(None),
    }
}

/// Node `id` as a depthwise convolution (one group per channel, not
/// quantized) whose kernel and bias are constants: the op, kernel, bias.
fn const_depthwise(
    model: &TypedModel,
    id: usize,
) -> TractResult<Option<(&Conv, Arc<Tensor>, Arc<Tensor>)>> {
    let node = model.node(id);
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    if conv.q_params.is_some()
        || conv.group <= 1
        || conv.group != conv.input_channels()
        || conv.group != conv.output_channels()
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
    match (
        model.outlet_fact(node.inputs[1])?.konst.clone(),
        model.outlet_fact(node.inputs[2])?.konst.clone(),
    ) {
        (Some(kernel), Some(bias)) => Ok(Some((conv, kernel, bias))),
        _ => Ok(None),
    }
}

/// The patch folding node `id`'s successor into it, if `id` is a depthwise
/// convolution with constant weights followed only by such an operation.
fn fold_one(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let Some(op) = channel_op_after(model, id)? else {
        return Ok(None);
    };
    let Some((kernel, bias)) = folded_weights(&op)? else {
        return Ok(None);
    };
    let node = model.node(id);
    let mut patch = TypedModelPatch::default();
    let input = patch.tap_model(model, node.inputs[0])?;
    let kernel = patch.add_const(format!("{}.folded_kernel", node.name), kernel)?;
    let bias = patch.add_const(format!("{}.folded_bias", node.name), bias)?;
    let wire = patch.wire_node(&node.name, op.conv.clone(), &[input, kernel, bias])?[0];
    patch.shunt_outside(model, op.succ.id.into(), wire)?;
    Ok(Some(patch))
}

/// A depthwise convolution with constant f32 weights, and the constant
/// per-channel `Add` or `Mul` that is its only consumer: what
/// [`fold_one`] folds.
struct ChannelOp<'a> {
    conv: &'a Conv,
    kernel: Arc<Tensor>,
    bias: Arc<Tensor>,
    /// The `Add` or `Mul`.
    succ: &'a TypedNode,
    is_add: bool,
    /// Its constant operand: one value, or one per channel.
    operand: Arc<Tensor>,
}

/// Node `id` and its only consumer as a [`ChannelOp`], if they are one.
fn channel_op_after(model: &TypedModel, id: usize) -> TractResult<Option<ChannelOp<'_>>> {
    let Some((conv, kernel, bias)) = const_depthwise(model, id)? else {
        return Ok(None);
    };
    let channels = conv.output_channels();
    let Some((succ, bin, slot)) = sole_binary_successor(model, id)? else {
        return Ok(None);
    };
    let is_add = bin.0.is::<Add>();
    if !(is_add || bin.0.is::<Mul>()) {
        return Ok(None);
    }
    let other = model.outlet_fact(succ.inputs[1 - slot])?;
    let Some(operand) = other.konst.clone() else {
        return Ok(None);
    };
    // The operand must hold one value per channel, on the channel axis of
    // the convolution's output, and broadcast nothing else.
    let out_fact = model.outlet_fact(OutletId::new(id, 0))?;
    if out_fact.datum_type != f32::datum_type()
        || operand.datum_type() != f32::datum_type()
        || kernel.datum_type() != f32::datum_type()
        || bias.datum_type() != f32::datum_type()
        || model.outlet_fact(OutletId::new(succ.id, 0))?.shape != out_fact.shape
    {
        return Ok(None);
    }
    let c_axis = conv
        .pool_spec
        .data_format
        .shape(out_fact.shape.to_tvec())?
        .c_axis();
    if !per_channel_on(operand.shape(), out_fact.rank(), c_axis, channels) {
        return Ok(None);
    }
    Ok(Some(ChannelOp {
        conv,
        kernel,
        bias,
        succ,
        is_add,
        operand,
    }))
}

/// Whether a constant of `shape`, broadcast against an output of rank
/// `out_rank`, holds `channels` values (or one) on axis `c_axis` and one
/// on every other axis.
fn per_channel_on(shape: &[usize], out_rank: usize, c_axis: usize, channels: usize) -> bool {
    if shape.len() > out_rank {
        return false;
    }
    let lead = out_rank - shape.len();
    shape.iter().enumerate().all(|(ax, &d)| {
        if ax + lead == c_axis {
            d == channels || d == 1
        } else {
            d == 1
        }
    })
}

/// The convolution's kernel and bias with `op` folded in: its operand
/// added to the bias, or multiplied into the bias and the kernel's output
/// channels; `None` if their shapes do not allow it.
fn folded_weights(op: &ChannelOp) -> TractResult<Option<(Tensor, Tensor)>> {
    let channels = op.conv.output_channels();
    let values = plain_f32(&op.operand)?;
    let old_bias = plain_f32(&op.bias)?;
    if old_bias.len() != channels && old_bias.len() != 1 {
        return Ok(None);
    }
    let new_bias: Vec<f32> = (0..channels)
        .map(|c| {
            let (old, value) = (channel(&old_bias, c), channel(&values, c));
            if op.is_add {
                old + value
            } else {
                old * value
            }
        })
        .collect();
    let new_bias = Tensor::from_shape(&[channels], &new_bias)?;
    let mut new_kernel = op.kernel.clone().into_tensor();
    if !op.is_add {
        let o_axis = op.conv.kernel_fmt.o_axis(new_kernel.shape());
        if new_kernel.shape()[o_axis] != channels {
            return Ok(None);
        }
        let mut view = new_kernel.to_plain_array_view_mut::<f32>()?;
        for (c, mut lane) in view.axis_iter_mut(tract_ndarray::Axis(o_axis)).enumerate() {
            lane.mapv_inplace(|k| k * channel(&values, c));
        }
    }
    Ok(Some((new_kernel, new_bias)))
}

/// An f32 tensor's values, in order.
pub(super) fn plain_f32(tensor: &Tensor) -> TractResult<Vec<f32>> {
    Ok(tensor
        .to_plain_array_view::<f32>()?
        .iter()
        .copied()
        .collect())
}

/// Channel `c`'s value of a per-channel constant that holds one value per
/// channel, or one for all.
fn channel(values: &[f32], c: usize) -> f32 {
    if values.len() == 1 {
        values[0]
    } else {
        values[c]
    }
}

/// Replaces every depthwise convolution followed only by a clamp (`Max`
/// with a constant, then `Min` with a constant, or the other way round: a
/// TensorFlow ReLU6) by one [`crate::inference::rewrite::fused::DepthwiseClip`]; returns how
/// many. Run after [`fold_depthwise_channel_ops`], so the bias is already
/// the convolution's own.
pub fn fuse_depthwise_clip(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_all(model, fuse_one)
}

/// The only consumer of `id`'s output, if it is a `Max` or `Min` with a
/// one-value constant: (is it `Max`, the value, the node).
pub(super) fn clamp_after(
    model: &TypedModel,
    id: usize,
) -> TractResult<Option<(bool, f32, usize)>> {
    let Some((succ, bin, slot)) = sole_binary_successor(model, id)? else {
        return Ok(None);
    };
    let is_max = bin.0.is::<Max>();
    if !(is_max || bin.0.is::<Min>()) {
        return Ok(None);
    }
    let other = model.outlet_fact(succ.inputs[1 - slot])?;
    let same_shape = model.outlet_fact(OutletId::new(succ.id, 0))?.shape
        == model.outlet_fact(OutletId::new(id, 0))?.shape;
    match &other.konst {
        Some(k) if k.len() == 1 && k.datum_type() == f32::datum_type() && same_shape => {
            let value = k.cast_to_scalar::<f32>()?;
            Ok(Some((is_max, value, succ.id)))
        }
        _ => Ok(None),
    }
}

/// A clamp as the only consumers of `id`'s output: `Max` then `Min`, or
/// `Min` then `Max`, with one-value constants: (low, high, the last node).
pub(super) fn clamp_pair_after(
    model: &TypedModel,
    id: usize,
) -> TractResult<Option<(f32, f32, usize)>> {
    let Some((first_max, first, first_id)) = clamp_after(model, id)? else {
        return Ok(None);
    };
    let Some((second_max, second, second_id)) = clamp_after(model, first_id)? else {
        return Ok(None);
    };
    if first_max == second_max {
        return Ok(None);
    }
    let (low, high) = if first_max {
        (first, second)
    } else {
        (second, first)
    };
    if low.is_nan() || high.is_nan() || low > high {
        return Ok(None);
    }
    Ok(Some((low, high, second_id)))
}

/// The patch replacing node `id` and the clamp after it by one
/// `DepthwiseClip`, if `id` is a depthwise convolution that op computes and
/// a clamp is its only consumer.
fn fuse_one(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let Some((conv, input_shape)) = clip_fusable_depthwise(model, id)? else {
        return Ok(None);
    };
    let Some((low, high, second_id)) = clamp_pair_after(model, id)? else {
        return Ok(None);
    };
    let Some(op) = depthwise_clip(conv, input_shape, low, high) else {
        return Ok(None);
    };
    let end_fact = model.outlet_fact(OutletId::new(second_id, 0))?;
    if end_fact.shape.as_concrete() != Some(&*op.output_shape()) {
        return Ok(None);
    }
    let node = model.node(id);
    let mut patch = TypedModelPatch::default();
    let data = patch.tap_model(model, node.inputs[0])?;
    let k = patch.tap_model(model, node.inputs[1])?;
    let b = patch.tap_model(model, node.inputs[2])?;
    let wire = patch.wire_node(format!("{}.clip", node.name), op, &[data, k, b])?;
    patch.shunt_outside(model, OutletId::new(second_id, 0), wire[0])?;
    Ok(Some(patch))
}

/// Node `id` as a depthwise convolution `DepthwiseClip` computes (2-D,
/// NHWC with a batch of 1 or HWC, HWIO kernel, no dilation, f32 constant
/// weights, a concrete input shape): the op and its input's shape.
fn clip_fusable_depthwise(
    model: &TypedModel,
    id: usize,
) -> TractResult<Option<(&Conv, Vec<usize>)>> {
    let node = model.node(id);
    let Some((conv, kernel, bias)) = const_depthwise(model, id)? else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let channels = conv.output_channels();
    let no_dilation = spec
        .dilations
        .as_ref()
        .is_none_or(|d| d.iter().all(|&x| x == 1));
    if !matches!(spec.data_format, DataFormat::NHWC | DataFormat::HWC)
        || conv.kernel_fmt != tract_tensorflow::tract_core::ops::cnn::KernelFormat::HWIO
        || spec.kernel_shape.len() != 2
        || !no_dilation
    {
        return Ok(None);
    }
    let input_fact = model.outlet_fact(node.inputs[0])?;
    let Some(input_shape) = input_fact.shape.as_concrete().map(<[usize]>::to_vec) else {
        return Ok(None);
    };
    let batched = spec.data_format == DataFormat::NHWC;
    if input_fact.datum_type != f32::datum_type()
        || kernel.datum_type() != f32::datum_type()
        || bias.datum_type() != f32::datum_type()
        || kernel.len() != spec.kernel_shape.iter().product::<usize>() * channels
        || bias.len() != channels
        || input_shape.len() != if batched { 4 } else { 3 }
        || (batched && input_shape[0] != 1)
    {
        return Ok(None);
    }
    Ok(Some((conv, input_shape)))
}

/// The `DepthwiseClip` computing `conv` over an input of `input_shape`
/// clamped to `low..=high`; `None` for a padding it does not do.
fn depthwise_clip(
    conv: &Conv,
    input_shape: Vec<usize>,
    low: f32,
    high: f32,
) -> Option<crate::inference::rewrite::fused::DepthwiseClip> {
    let spec = &conv.pool_spec;
    let n = input_shape.len();
    let (h, w) = (input_shape[n - 3], input_shape[n - 2]);
    let (kh, kw) = (spec.kernel_shape[0], spec.kernel_shape[1]);
    let strides = spec.strides.clone().unwrap_or_else(|| tvec!(1, 1));
    let (sh, sw) = (strides[0], strides[1]);
    let (out_h, pad_top) = out_and_pad(&spec.padding, h, kh, sh, 0)?;
    let (out_w, pad_left) = out_and_pad(&spec.padding, w, kw, sw, 1)?;
    Some(crate::inference::rewrite::fused::DepthwiseClip {
        input_shape,
        kernel_h: kh,
        kernel_w: kw,
        stride_h: sh,
        stride_w: sw,
        pad_top,
        pad_left,
        out_h,
        out_w,
        low: low.to_bits(),
        high: high.to_bits(),
    })
}

/// (output size, padding before) of spatial axis `axis` under `padding`,
/// for an input of `size`, a kernel of `k` and a stride of `s`; `None` for
/// a padding `DepthwiseClip` does not do.
pub(super) fn out_and_pad(
    padding: &PaddingSpec,
    size: usize,
    k: usize,
    s: usize,
    axis: usize,
) -> Option<(usize, usize)> {
    match padding {
        PaddingSpec::Valid => (size >= k).then(|| ((size - k) / s + 1, 0)),
        PaddingSpec::SameUpper => {
            let out = size.div_ceil(s);
            let total = ((out - 1) * s + k).saturating_sub(size);
            Some((out, total / 2))
        }
        PaddingSpec::Explicit(before, after) => {
            let padded = size + before[axis] + after[axis];
            (padded >= k).then(|| ((padded - k) / s + 1, before[axis]))
        }
        _ => None,
    }
}

/// Replaces every 1x1 convolution over channel-inner data with constant
/// weights (tract's `EinSum` `HWI,OI->HWO`, with or without a batch axis of
/// 1), with the constant per-channel `Add` (its bias) and the clamp that
/// follow it if they do, by one [`crate::inference::rewrite::fused::PointwiseClip`]; returns
/// how many. The op runs on the 1x1 kernel of the process's kernel family
/// ([`crate::inference::kernels`]).
pub fn fuse_pointwise(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_all(model, pointwise_one)
}

/// The patch replacing node `id`, and the bias and clamp after it if they
/// follow, by one `PointwiseClip`, if `id` is a 1x1 convolution that op
/// computes.
fn pointwise_one(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let Some((weights, out_shape)) = const_pointwise(model, id)? else {
        return Ok(None);
    };
    let (n, k) = (weights.shape()[0], weights.shape()[1]);
    let (bias, end) = bias_after(model, id, n)?;
    let (low, high, end) = match clamp_pair_after(model, end)? {
        Some((low, high, last)) => (low, high, last),
        None => (f32::NEG_INFINITY, f32::INFINITY, end),
    };
    let plain = plain_f32(&weights)?;
    let op = crate::inference::rewrite::fused::PointwiseClip {
        output_shape: out_shape,
        low,
        high,
        weights: Arc::new(x86_pointwise::Pointwise::new(&plain, &bias, n, k)),
    };
    let node = model.node(id);
    let mut patch = TypedModelPatch::default();
    let data = patch.tap_model(model, node.inputs[0])?;
    let wire = patch.wire_node(format!("{}.pointwise", node.name), op, &[data])?;
    patch.shunt_outside(model, OutletId::new(end, 0), wire[0])?;
    Ok(Some(patch))
}

/// Node `id` as a 1x1 convolution `PointwiseClip` computes (an f32
/// `EinSum` `HWI,OI->HWO`, with or without a batch of 1, constant weights
/// `[n, k]`, concrete shapes): the weights and the output shape.
fn const_pointwise(
    model: &TypedModel,
    id: usize,
) -> TractResult<Option<(Arc<Tensor>, Vec<usize>)>> {
    let node = model.node(id);
    let Some(einsum) = node.op_as::<EinSum>() else {
        return Ok(None);
    };
    let expr = einsum.axes.to_string();
    if einsum.q_params.is_some()
        || einsum.operating_dt != f32::datum_type()
        || node.inputs.len() != 2
        || !matches!(
            expr.as_str(),
            "HWI,OI->HWO" | "NHWI,OI->HWO" | "NHWI,OI->NHWO"
        )
    {
        return Ok(None);
    }
    let input = model.outlet_fact(node.inputs[0])?;
    let Some(weights) = model.outlet_fact(node.inputs[1])?.konst.clone() else {
        return Ok(None);
    };
    let out_fact = model.outlet_fact(OutletId::new(id, 0))?;
    let (Some(in_shape), Some(out_shape)) =
        (input.shape.as_concrete(), out_fact.shape.as_concrete())
    else {
        return Ok(None);
    };
    if input.datum_type != f32::datum_type()
        || weights.datum_type() != f32::datum_type()
        || weights.rank() != 2
        || expr.starts_with('N') && in_shape.first() != Some(&1)
    {
        return Ok(None);
    }
    let (n, k) = (weights.shape()[0], weights.shape()[1]);
    let m: usize = in_shape.iter().product::<usize>() / k.max(1);
    if k == 0
        || in_shape.last() != Some(&k)
        || out_shape.last() != Some(&n)
        || out_shape.iter().product::<usize>() != m * n
    {
        return Ok(None);
    }
    Ok(Some((weights, out_shape.to_vec())))
}

/// The bias after node `id` (with `n` output channels, last): a constant
/// `Add` of one value per channel, or of one for all, that is its only
/// consumer. That bias and the `Add`, or zeros and `id` itself.
fn bias_after(model: &TypedModel, id: usize, n: usize) -> TractResult<(Vec<f32>, usize)> {
    let none = (vec![0f32; n], id);
    let Some((succ, bin, slot)) = sole_binary_successor(model, id)? else {
        return Ok(none);
    };
    let out_fact = model.outlet_fact(OutletId::new(id, 0))?;
    let operand = model.outlet_fact(succ.inputs[1 - slot])?.konst.clone();
    let same = model.outlet_fact(OutletId::new(succ.id, 0))?.shape == out_fact.shape;
    let (true, true, Some(b)) = (bin.0.is::<Add>(), same, operand) else {
        return Ok(none);
    };
    let shape = b.shape();
    let per_channel = b.datum_type() == f32::datum_type()
        && shape.len() <= out_fact.rank()
        && shape.iter().rev().skip(1).all(|&d| d == 1)
        && matches!(shape.last(), Some(&d) if d == n || d == 1);
    if !per_channel {
        return Ok(none);
    }
    let values = plain_f32(&b)?;
    Ok(((0..n).map(|o| channel(&values, o)).collect(), succ.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_tensorflow::tract_core::ops::cnn::conv::KernelFormat;
    use tract_tensorflow::tract_core::ops::cnn::{PaddingSpec, PoolSpec};
    use tract_tensorflow::tract_core::ops::math::{add, mul};
    use tract_tensorflow::tract_core::ops::nn::DataFormat;

    /// An NHWC 3x3 depthwise convolution over `c` channels, TF `SAME`.
    fn depthwise_3x3(c: usize) -> Conv {
        let pool_spec = PoolSpec {
            data_format: DataFormat::NHWC,
            kernel_shape: tvec!(3, 3),
            padding: PaddingSpec::SameUpper,
            dilations: None,
            strides: None,
            input_channels: c,
            output_channels: c,
        };
        Conv {
            pool_spec,
            kernel_fmt: KernelFormat::OIHW,
            group: c,
            q_params: None,
        }
    }

    /// NHWC depthwise 3x3 over 5 channels, then `* scale + shift`, both per
    /// channel, as a batch norm folded by TensorFlow leaves them.
    fn conv_scale_shift() -> TypedModel {
        let c = 5;
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 6, 7, c])).unwrap();
        let k: Vec<f32> = (0..c * 9).map(|i| (i as f32 * 0.37).sin()).collect();
        let k = model
            .add_const("k", Tensor::from_shape(&[c, 1, 3, 3], &k).unwrap())
            .unwrap();
        let b: Vec<f32> = (0..c).map(|i| i as f32 * 0.1).collect();
        let b = model
            .add_const("b", Tensor::from_shape(&[c], &b).unwrap())
            .unwrap();
        let y = model.wire_node("dw", depthwise_3x3(c), &[x, k, b]).unwrap()[0];
        let s: Vec<f32> = (0..c).map(|i| 0.5 + i as f32).collect();
        let s = model
            .add_const("s", Tensor::from_shape(&[1, 1, 1, c], &s).unwrap())
            .unwrap();
        let y = model.wire_node("scale", mul(), &[y, s]).unwrap()[0];
        let t: Vec<f32> = (0..c).map(|i| 1.0 - i as f32 * 0.3).collect();
        let t = model
            .add_const("t", Tensor::from_shape(&[1, 1, 1, c], &t).unwrap())
            .unwrap();
        let y = model.wire_node("shift", add(), &[t, y]).unwrap();
        model.select_output_outlets(&y).unwrap();
        model
    }

    fn run(model: TypedModel) -> Vec<f32> {
        let x: Vec<f32> = (0..6 * 7 * 5).map(|i| (i as f32 * 0.11).cos()).collect();
        let x = Tensor::from_shape(&[1, 6, 7, 5], &x).unwrap();
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        let y = plan.run(tvec!(x.into_tvalue())).unwrap().remove(0);
        y.to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn scale_and_shift_after_a_depthwise_convolution_become_its_weights() {
        let model = conv_scale_shift().into_decluttered().unwrap();
        let mut folded = model.clone();
        assert_eq!(fold_depthwise_channel_ops(&mut folded).unwrap(), 2);
        assert!(
            !folded.nodes.iter().any(|n| n.op_is::<TypedBinOp>()),
            "a binary op is left: {folded}"
        );
        let (want, got) = (run(model), run(folded));
        assert_eq!(want.len(), got.len());
        for (a, b) in want.iter().zip(&got) {
            assert!((a - b).abs() <= 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn an_operand_that_is_not_per_channel_stays() {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 4, 4, 2])).unwrap();
        let k = Tensor::from_shape(&[2, 1, 3, 3], &[0.5f32; 18]).unwrap();
        let k = model.add_const("k", k).unwrap();
        let b = model
            .add_const("b", Tensor::from_shape(&[2], &[0f32, 0.]).unwrap())
            .unwrap();
        let y = model.wire_node("dw", depthwise_3x3(2), &[x, k, b]).unwrap()[0];
        // one value per column, not per channel
        let w = Tensor::from_shape(&[1, 1, 4, 1], &[1f32, 2., 3., 4.]).unwrap();
        let w = model.add_const("w", w).unwrap();
        let y = model.wire_node("per_column", add(), &[y, w]).unwrap();
        model.select_output_outlets(&y).unwrap();
        let mut model = model.into_decluttered().unwrap();
        assert_eq!(fold_depthwise_channel_ops(&mut model).unwrap(), 0);
    }
}
