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
use tract_tensorflow::tract_core::ops::math::{Add, Mul};

/// Folds every per-channel constant `Add` or `Mul` that is the only consumer
/// of a depthwise convolution into that convolution; returns how many.
pub fn fold_depthwise_channel_ops(model: &mut TypedModel) -> TractResult<usize> {
    let mut folded = 0;
    'again: loop {
        for id in model.eval_order()? {
            if let Some(patch) = fold_one(model, id)? {
                patch.apply(model)?;
                folded += 1;
                continue 'again;
            }
        }
        break;
    }
    if folded > 0 {
        model.compact()?;
    }
    Ok(folded)
}

/// The patch folding node `id`'s successor into it, if `id` is a depthwise
/// convolution with constant weights followed only by such an operation.
fn fold_one(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let node = model.node(id);
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let channels = conv.output_channels();
    if conv.q_params.is_some()
        || conv.group <= 1
        || conv.group != conv.input_channels()
        || conv.group != channels
        || node.inputs.len() != 3
        || node.outputs[0].successors.len() != 1
        || model.output_outlets()?.contains(&OutletId::new(id, 0))
    {
        return Ok(None);
    }
    let succ_outlet = node.outputs[0].successors[0];
    let succ = model.node(succ_outlet.node);
    let Some(bin) = succ.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    let is_add = bin.0.is::<Add>();
    if !(is_add || bin.0.is::<Mul>()) || succ.inputs.len() != 2 {
        return Ok(None);
    }
    let (Some(kernel), Some(bias)) = (
        model.outlet_fact(node.inputs[1])?.konst.clone(),
        model.outlet_fact(node.inputs[2])?.konst.clone(),
    ) else {
        return Ok(None);
    };
    let other = model.outlet_fact(succ.inputs[1 - succ_outlet.slot])?;
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
    let out_rank = out_fact.rank();
    let c_axis = conv.pool_spec.data_format.shape(out_fact.shape.to_tvec())?.c_axis();
    let op_shape = operand.shape();
    if op_shape.len() > out_rank {
        return Ok(None);
    }
    let lead = out_rank - op_shape.len();
    let per_channel = op_shape.iter().enumerate().all(|(ax, &d)| {
        if ax + lead == c_axis {
            d == channels || d == 1
        } else {
            d == 1
        }
    });
    if !per_channel {
        return Ok(None);
    }
    let values: Vec<f32> = operand.to_plain_array_view::<f32>()?.iter().copied().collect();
    let value = |c: usize| if values.len() == 1 { values[0] } else { values[c] };
    let old_bias: Vec<f32> = bias.to_plain_array_view::<f32>()?.iter().copied().collect();
    if old_bias.len() != channels && old_bias.len() != 1 {
        return Ok(None);
    }
    let old = |c: usize| if old_bias.len() == 1 { old_bias[0] } else { old_bias[c] };

    let new_bias: Vec<f32> = (0..channels)
        .map(|c| if is_add { old(c) + value(c) } else { old(c) * value(c) })
        .collect();
    let new_bias = Tensor::from_shape(&[channels], &new_bias)?;
    let mut new_kernel = kernel.into_tensor();
    if !is_add {
        let o_axis = conv.kernel_fmt.o_axis(new_kernel.shape());
        if new_kernel.shape()[o_axis] != channels {
            return Ok(None);
        }
        let mut view = new_kernel.to_plain_array_view_mut::<f32>()?;
        for (c, mut lane) in view.axis_iter_mut(tract_ndarray::Axis(o_axis)).enumerate() {
            lane.mapv_inplace(|k| k * value(c));
        }
    }

    let mut patch = TypedModelPatch::default();
    let input = patch.tap_model(model, node.inputs[0])?;
    let kernel = patch.add_const(format!("{}.folded_kernel", node.name), new_kernel)?;
    let bias = patch.add_const(format!("{}.folded_bias", node.name), new_bias)?;
    let wire = patch.wire_node(&node.name, conv.clone(), &[input, kernel, bias])?[0];
    patch.shunt_outside(model, succ.id.into(), wire)?;
    Ok(Some(patch))
}
