//! Dense convolutions (ResNet, VGG, Inception, DenseNet, the first layer
//! of every net) with their bias and clamp in one op, on predictd's 1x1
//! kernel.
//!
//! A `kh x kw` convolution over channel-inner (NHWC) data is a 1x1
//! convolution over the `kh * kw * c` values around each output position:
//! [`DenseClip`] gathers those values for a band of positions at a time
//! into a buffer that stays in cache (zeros where the window reaches past
//! the border: TensorFlow `SAME` or explicit padding), then runs
//! `x86_pointwise`'s kernel on the band, the bias added and the clamp
//! (ReLU, ReLU6) applied in registers. The weights are packed once, when
//! the op is built. [`fuse_dense`] puts it in place of tract's `Conv`
//! (one group, not quantized, constant f32 weights, no dilation) and the
//! clamp that follows it, if one does.

use super::fold::{clamp_after, clamp_pair_after, out_and_pad, plain_f32, rewrite_all};
use super::fused::{data_only_fact, eval_data_only, split_rows};
use tract_tensorflow::prelude::*;
use tract_tensorflow::tract_core::internal::*;
use tract_tensorflow::tract_core::ops::cnn::conv::Conv;
use tract_tensorflow::tract_core::ops::cnn::KernelFormat;
use tract_tensorflow::tract_core::ops::nn::DataFormat;
use tract_tensorflow::tract_core::{as_op, op_as_typed_op, op_out_of_plan};

/// Output positions gathered at a time: their windows, `kh * kw * c`
/// values each, stay in the second-level cache while the kernel reads them.
const BAND: usize = 64;

/// Fewer output positions than this stay tract's: gathering a window per
/// position costs more than it saves on a small output (measured on the
/// zoo's 64x64 graphs: ResNet-50 and Inception v3 slower with every conv
/// fused; a 112x112 block of 3x3 convolutions 1.8x faster).
const MIN_POSITIONS: usize = 256;

/// A dense 2-D convolution over `[1, H, W, C]` or `[H, W, C]`, its bias
/// and a clamp, computed as described in the module's doc.
#[derive(Debug, Clone)]
pub struct DenseClip {
    pub input_shape: Vec<usize>,
    pub output_shape: Vec<usize>,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub low: f32,
    pub high: f32,
    /// `n` = output channels, `k` = `kh * kw * c`, rows in (ky, kx, c) order.
    pub weights: Arc<x86_pointwise::Pointwise>,
}

impl PartialEq for DenseClip {
    fn eq(&self, o: &Self) -> bool {
        self.input_shape == o.input_shape
            && self.output_shape == o.output_shape
            && (self.kernel_h, self.kernel_w, self.stride_h, self.stride_w)
                == (o.kernel_h, o.kernel_w, o.stride_h, o.stride_w)
            && (self.pad_top, self.pad_left, self.out_h, self.out_w)
                == (o.pad_top, o.pad_left, o.out_h, o.out_w)
            && self.low.to_bits() == o.low.to_bits()
            && self.high.to_bits() == o.high.to_bits()
            && (Arc::ptr_eq(&self.weights, &o.weights) || self.weights == o.weights)
    }
}

impl Eq for DenseClip {}

impl std::hash::Hash for DenseClip {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.input_shape.hash(state);
        self.output_shape.hash(state);
        (self.kernel_h, self.kernel_w, self.stride_h, self.stride_w).hash(state);
        self.low.to_bits().hash(state);
        self.high.to_bits().hash(state);
    }
}

impl DenseClip {
    fn hwc(&self) -> (usize, usize, usize) {
        let n = self.input_shape.len();
        (
            self.input_shape[n - 3],
            self.input_shape[n - 2],
            self.input_shape[n - 1],
        )
    }

    /// Output positions `first..first + rows.len() / k` gathered into `rows`.
    fn gather(&self, input: &[f32], first: usize, rows: &mut [f32]) {
        let (h, w, c) = self.hwc();
        let k = self.weights.input_channels();
        for (i, row) in rows.chunks_exact_mut(k).enumerate() {
            let (oy, ox) = ((first + i) / self.out_w, (first + i) % self.out_w);
            for ky in 0..self.kernel_h {
                let y = (oy * self.stride_h + ky) as isize - self.pad_top as isize;
                for kx in 0..self.kernel_w {
                    let x = (ox * self.stride_w + kx) as isize - self.pad_left as isize;
                    let to = &mut row[(ky * self.kernel_w + kx) * c..][..c];
                    if y >= 0 && (y as usize) < h && x >= 0 && (x as usize) < w {
                        let at = (y as usize * w + x as usize) * c;
                        to.copy_from_slice(&input[at..at + c]);
                    } else {
                        to.fill(0.0);
                    }
                }
            }
        }
    }

    /// Output positions `first..` into `output` (rows of `n`), a band at a
    /// time through a buffer of its own.
    fn run_rows(&self, input: &[f32], first: usize, output: &mut [f32]) {
        let (k, n) = (
            self.weights.input_channels(),
            self.weights.output_channels(),
        );
        let mut rows = vec![0f32; BAND * k];
        for (b, out) in output.chunks_mut(BAND * n).enumerate() {
            let count = out.len() / n;
            let rows = &mut rows[..count * k];
            self.gather(input, first + b * BAND, rows);
            self.weights.run(rows, out, self.low, self.high);
        }
    }

    /// Every output position, split over a worker's pool as the other
    /// fused ops are ([`split_rows`], a band at least per thread).
    pub fn run(&self, input: &[f32], output: &mut [f32]) {
        let n = self.weights.output_channels();
        split_rows(output, n, BAND, |first, out| {
            self.run_rows(input, first, out)
        });
    }
}

impl Op for DenseClip {
    fn name(&self) -> StaticName {
        "DenseClip".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{}x{} stride {}x{}, {} -> {} channels, clamp to [{}, {}]",
            self.kernel_h,
            self.kernel_w,
            self.stride_h,
            self.stride_w,
            self.hwc().2,
            self.weights.output_channels(),
            self.low,
            self.high
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for DenseClip {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let len: usize = self.input_shape.iter().product();
        eval_data_only(
            "DenseClip",
            &inputs,
            |l| l == len,
            &self.output_shape,
            |i, o| self.run(i, o),
        )
    }
}

impl TypedOp for DenseClip {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        data_only_fact("DenseClip", inputs, &self.output_shape)
    }

    as_op!();
}

/// Replaces every dense convolution `DenseClip` computes, and the clamp
/// after it if one follows (`Max` and `Min`: ReLU6; `Max` alone: ReLU), by
/// one `DenseClip`; returns how many. 1x1 convolutions are not `Conv`
/// ops by then (tract made them matrix products; see `fuse_pointwise`).
pub fn fuse_dense(model: &mut TypedModel) -> TractResult<usize> {
    rewrite_all(model, dense_one)
}

fn dense_one(model: &TypedModel, id: usize) -> TractResult<Option<TypedModelPatch>> {
    let Some(mut op) = dense_clip(model, id)? else {
        return Ok(None);
    };
    let (low, high, end) = match clamp_pair_after(model, id)? {
        Some((low, high, last)) => (low, high, last),
        None => match clamp_after(model, id)? {
            Some((true, low, last)) if !low.is_nan() => (low, f32::INFINITY, last),
            Some((false, high, last)) if !high.is_nan() => (f32::NEG_INFINITY, high, last),
            _ => (f32::NEG_INFINITY, f32::INFINITY, id),
        },
    };
    (op.low, op.high) = (low, high);
    let end_fact = model.outlet_fact(OutletId::new(end, 0))?;
    if end_fact.shape.as_concrete() != Some(&*op.output_shape) {
        return Ok(None);
    }
    let node = model.node(id);
    let mut patch = TypedModelPatch::default();
    let data = patch.tap_model(model, node.inputs[0])?;
    let wire = patch.wire_node(format!("{}.dense", node.name), op, &[data])?;
    patch.shunt_outside(model, OutletId::new(end, 0), wire[0])?;
    Ok(Some(patch))
}

/// Node `id` as the `DenseClip` that computes it (unclamped), if it is a
/// convolution that op does: one group, not quantized, 2-D, channel-inner
/// data with a batch of 1 at most, an HWIO kernel larger than 1x1, no
/// dilation, f32 constant kernel and bias, concrete shapes, a padding it
/// knows.
fn dense_clip(model: &TypedModel, id: usize) -> TractResult<Option<DenseClip>> {
    let node = model.node(id);
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    if conv.q_params.is_some()
        || conv.group != 1
        || node.inputs.len() != 3
        || !matches!(spec.data_format, DataFormat::NHWC | DataFormat::HWC)
        || conv.kernel_fmt != KernelFormat::HWIO
        || spec.kernel_shape.len() != 2
        || spec.kernel_shape.iter().product::<usize>() <= 1
        || spec
            .dilations
            .as_ref()
            .is_some_and(|d| d.iter().any(|&x| x != 1))
    {
        return Ok(None);
    }
    let (Some(kernel), Some(bias)) = (
        model.outlet_fact(node.inputs[1])?.konst.clone(),
        model.outlet_fact(node.inputs[2])?.konst.clone(),
    ) else {
        return Ok(None);
    };
    let input_fact = model.outlet_fact(node.inputs[0])?;
    let output_fact = model.outlet_fact(OutletId::new(id, 0))?;
    let (Some(input_shape), Some(output_shape)) = (
        input_fact.shape.as_concrete().map(<[usize]>::to_vec),
        output_fact.shape.as_concrete().map(<[usize]>::to_vec),
    ) else {
        return Ok(None);
    };
    let batched = spec.data_format == DataFormat::NHWC;
    let rank = if batched { 4 } else { 3 };
    if input_fact.datum_type != f32::datum_type()
        || kernel.datum_type() != f32::datum_type()
        || bias.datum_type() != f32::datum_type()
        || input_shape.len() != rank
        || (batched && input_shape[0] != 1)
    {
        return Ok(None);
    }
    let (kh, kw) = (spec.kernel_shape[0], spec.kernel_shape[1]);
    let (c, n) = (input_shape[rank - 1], conv.output_channels());
    if kernel.shape() != [kh, kw, c, n] || !(bias.len() == n || bias.len() == 1) {
        return Ok(None);
    }
    let strides = spec.strides.clone().unwrap_or_else(|| tvec!(1, 1));
    let (h, w) = (input_shape[rank - 3], input_shape[rank - 2]);
    let (Some((out_h, pad_top)), Some((out_w, pad_left))) = (
        out_and_pad(&spec.padding, h, kh, strides[0], 0),
        out_and_pad(&spec.padding, w, kw, strides[1], 1),
    ) else {
        return Ok(None);
    };
    if output_shape.iter().product::<usize>() != out_h * out_w * n || out_h * out_w < MIN_POSITIONS
    {
        return Ok(None);
    }
    // HWIO [ky][kx][ci][co] to rows of k = (ky, kx, ci) per output channel.
    let hwio = plain_f32(&kernel)?;
    let k = kh * kw * c;
    let mut weights = vec![0f32; n * k];
    for (i, chunk) in hwio.chunks_exact(n).enumerate() {
        for (o, &v) in chunk.iter().enumerate() {
            weights[o * k + i] = v;
        }
    }
    let bias = plain_f32(&bias)?;
    let bias: Vec<f32> = (0..n).map(|o| bias[o.min(bias.len() - 1)]).collect();
    Ok(Some(DenseClip {
        input_shape,
        output_shape,
        kernel_h: kh,
        kernel_w: kw,
        stride_h: strides[0],
        stride_w: strides[1],
        pad_top,
        pad_left,
        out_h,
        out_w,
        low: f32::NEG_INFINITY,
        high: f32::INFINITY,
        weights: Arc::new(x86_pointwise::Pointwise::new(&weights, &bias, n, k)),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::fused::tests::values;
    use super::*;

    /// Every kernel size, stride and padding the rewrite accepts, odd
    /// channel counts, clamped and not: equal to the definition within
    /// rounding.
    #[test]
    fn equals_the_definition() {
        let mut seed = 7;
        for &(h, w, c, n) in &[
            (9, 7, 3, 5),
            (12, 12, 16, 17),
            (5, 11, 1, 64),
            (8, 8, 20, 70),
        ] {
            for &(kh, kw) in &[(3, 3), (5, 5), (7, 7), (1, 3)] {
                for &(s, same) in &[(1, true), (2, true), (1, false), (2, false)] {
                    if !same && (h < kh || w < kw) {
                        continue;
                    }
                    let axis = |size: usize, k: usize| {
                        if same {
                            let out = size.div_ceil(s);
                            (out, ((out - 1) * s + k).saturating_sub(size) / 2)
                        } else {
                            ((size - k) / s + 1, 0)
                        }
                    };
                    let ((out_h, pad_top), (out_w, pad_left)) = (axis(h, kh), axis(w, kw));
                    let hwio = values(kh * kw * c * n, &mut seed);
                    let bias = values(n, &mut seed);
                    let input = values(h * w * c, &mut seed);
                    let k = kh * kw * c;
                    let mut rows = vec![0f32; n * k];
                    for (i, chunk) in hwio.chunks_exact(n).enumerate() {
                        for (o, &v) in chunk.iter().enumerate() {
                            rows[o * k + i] = v;
                        }
                    }
                    for (low, high) in [(f32::NEG_INFINITY, f32::INFINITY), (0.0, 0.6)] {
                        let op = DenseClip {
                            input_shape: vec![1, h, w, c],
                            output_shape: vec![1, out_h, out_w, n],
                            kernel_h: kh,
                            kernel_w: kw,
                            stride_h: s,
                            stride_w: s,
                            pad_top,
                            pad_left,
                            out_h,
                            out_w,
                            low,
                            high,
                            weights: Arc::new(x86_pointwise::Pointwise::new(&rows, &bias, n, k)),
                        };
                        let mut got = vec![f32::NAN; out_h * out_w * n];
                        op.run(&input, &mut got);
                        for oy in 0..out_h {
                            for ox in 0..out_w {
                                for o in 0..n {
                                    let mut acc = bias[o];
                                    for ky in 0..kh {
                                        for kx in 0..kw {
                                            let y = (oy * s + ky) as isize - pad_top as isize;
                                            let x = (ox * s + kx) as isize - pad_left as isize;
                                            if y < 0 || x < 0 || y >= h as isize || x >= w as isize
                                            {
                                                continue;
                                            }
                                            for ci in 0..c {
                                                let v =
                                                    input[(y as usize * w + x as usize) * c + ci];
                                                acc += v * hwio[((ky * kw + kx) * c + ci) * n + o];
                                            }
                                        }
                                    }
                                    let want = acc.max(low).min(high);
                                    let g = got[(oy * out_w + ox) * n + o];
                                    assert!(
                                        (g - want).abs() <= 1e-4,
                                        "{h}x{w}x{c}->{n} k{kh}x{kw} s{s} same {same}: {g} vs {want}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
