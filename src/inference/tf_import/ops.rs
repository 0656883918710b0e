//! The ops tract lacks, for the framework's op table: padding carried as
//! attributes, `GatherV2` with any indices, `LRN`.

use tract_tensorflow::tfpb::tensorflow::attr_value::{ListValue, Value};
use tract_tensorflow::tfpb::tensorflow::NodeDef;
use tract_tensorflow::tract_hir::internal::*;
use tract_tensorflow::tract_hir::ops::array::{Pad, PadMode};

/// The op a padding node becomes: its paddings and mode are attributes.
pub(super) const PAD: &str = "PredictdPad";

/// `GatherV2` with int32 or int64 indices. (tract-tensorflow's own
/// requires int32 indices, which tract's gather then refuses when it folds
/// the shape arithmetic of Keras' Tensordot: the indices are cast here.)
#[derive(Debug, Clone)]
pub(super) struct GatherV2;

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

/// `PredictdPad`: the paddings carried as attributes by
/// [`rewrite`](super::spellings::rewrite).
pub(super) fn pad(
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

pub(super) fn lrn(
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
