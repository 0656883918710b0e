//! A depthwise convolution with its clamp (ReLU6) in the same pass.
//!
//! tract runs the ReLU6 after a depthwise convolution as a pass of its own
//! over the whole output (`OptBinChain(Max+Min)`). [`DepthwiseClip`]
//! replaces the convolution and the clamp (see [`crate::inference::rewrite::fold`]): it walks the
//! output one run of positions at a time, computes each run with the NHWC
//! depthwise kernel of tract's registry (ours on x86-64, from
//! `crates/x86-depthwise`), and clamps the run while it is still in the
//! first-level cache. One op, one pass over memory.

use tract_tensorflow::prelude::*;
use tract_tensorflow::tract_core::internal::*;
use tract_tensorflow::tract_core::{as_op, op_as_typed_op, op_out_of_plan};

/// Geometry of a channel-inner (HWC, batch 1 at most) depthwise
/// convolution, TensorFlow `SAME` or explicit padding, no dilation.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct DepthwiseClip {
    /// Input shape as given (`[1, H, W, C]` or `[H, W, C]`).
    pub input_shape: Vec<usize>,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub out_h: usize,
    pub out_w: usize,
    /// Clamp bounds, as bits (an op must be `Eq` and `Hash`).
    pub low: u32,
    pub high: u32,
}

impl DepthwiseClip {
    fn hwc(&self) -> (usize, usize, usize) {
        let s = &self.input_shape;
        let n = s.len();
        (s[n - 3], s[n - 2], s[n - 1])
    }

    pub fn output_shape(&self) -> Vec<usize> {
        let (_, _, c) = self.hwc();
        let mut shape = self.input_shape.clone();
        let n = shape.len();
        shape[n - 3] = self.out_h;
        shape[n - 2] = self.out_w;
        shape[n - 1] = c;
        shape
    }

    /// Runs the convolution on `input` (HWC), `kernel` (`[kh, kw, C]`) and
    /// `bias` (`[C]`) into `output` (`[out_h, out_w, C]`), clamped.
    ///
    /// Inside a rayon pool of several threads (a model worker's pool when
    /// its inference is the only work: `[[model]] threads`), the output rows
    /// are split in one band per thread; anywhere else (a worker's own
    /// thread) it runs on the calling thread alone, never on rayon's global
    /// pool.
    pub fn run(&self, input: &[f32], kernel: &[f32], bias: &[f32], output: &mut [f32]) {
        let (h, w, c) = self.hwc();
        assert_eq!(input.len(), h * w * c);
        assert_eq!(kernel.len(), self.kernel_h * self.kernel_w * c);
        assert_eq!(bias.len(), c);
        assert_eq!(output.len(), self.out_h * self.out_w * c);
        split_rows(output, self.out_w * c, 1, |first, rows| {
            self.run_rows(input, kernel, bias, first, rows)
        });
    }

    /// Output rows from `first` on, as many as `output` holds.
    fn run_rows(
        &self,
        input: &[f32],
        kernel: &[f32],
        bias: &[f32],
        first: usize,
        output: &mut [f32],
    ) {
        let (h, w, c) = self.hwc();
        let (lo, hi) = (f32::from_bits(self.low), f32::from_bits(self.high));
        let rows = output.len() / (self.out_w * c);
        let mut taps: Vec<usize> = Vec::with_capacity(self.kernel_h * self.kernel_w);
        let mut offsets: Vec<isize> = Vec::with_capacity(self.kernel_h * self.kernel_w);
        for oy in first..first + rows {
            let y0 = (oy * self.stride_h) as isize - self.pad_top as isize;
            let mut ox = 0;
            while ox < self.out_w {
                // A run: consecutive output positions whose window has the
                // same valid columns (the left edge, the middle, the right
                // edge, one at a time on the edges).
                let x0 = |ox: usize| (ox * self.stride_w) as isize - self.pad_left as isize;
                let whole =
                    |ox: usize| x0(ox) >= 0 && x0(ox) + self.kernel_w as isize <= w as isize;
                let mut end = ox + 1;
                if whole(ox) {
                    while end < self.out_w && whole(end) {
                        end += 1;
                    }
                }
                taps.clear();
                offsets.clear();
                for ky in 0..self.kernel_h {
                    let y = y0 + ky as isize;
                    if y < 0 || y >= h as isize {
                        continue;
                    }
                    for kx in 0..self.kernel_w {
                        let x = x0(ox) + kx as isize;
                        if x < 0 || x >= w as isize {
                            continue;
                        }
                        taps.push(ky * self.kernel_w + kx);
                        offsets.push((y * w as isize + x) * c as isize);
                    }
                }
                let len = end - ox;
                let at = (oy - first) * self.out_w;
                let out = &mut output[(at + ox) * c..(at + end) * c];
                if taps.is_empty() {
                    out.chunks_mut(c).for_each(|o| o.copy_from_slice(bias));
                } else {
                    x86_depthwise::run_channels(
                        input,
                        out,
                        kernel,
                        &taps,
                        &offsets,
                        bias,
                        c,
                        len,
                        self.stride_w * c,
                    );
                }
                // Compare-and-select, which vectorizes (f32::max/min also
                // order NaN, which no convolution output here is).
                for v in out.iter_mut() {
                    let x = if *v < lo { lo } else { *v };
                    *v = if x > hi { hi } else { x };
                }
                ox = end;
            }
        }
    }
}

impl Op for DepthwiseClip {
    fn name(&self) -> StaticName {
        "DepthwiseClip".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{}x{} stride {}x{}, clamp to [{}, {}]",
            self.kernel_h,
            self.kernel_w,
            self.stride_h,
            self.stride_w,
            f32::from_bits(self.low),
            f32::from_bits(self.high)
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for DepthwiseClip {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        if inputs.len() != 3 {
            return Err(TractError::msg("DepthwiseClip takes data, kernel and bias"));
        }
        let views = (
            inputs[0].to_plain_array_view::<f32>()?,
            inputs[1].to_plain_array_view::<f32>()?,
            inputs[2].to_plain_array_view::<f32>()?,
        );
        let (Some(input), Some(kernel), Some(bias)) =
            (views.0.to_slice(), views.1.to_slice(), views.2.to_slice())
        else {
            return Err(TractError::msg("DepthwiseClip needs contiguous inputs"));
        };
        let mut output = Tensor::zero::<f32>(&self.output_shape())?;
        let mut view = output.to_plain_array_view_mut::<f32>()?;
        let Some(out) = view.as_slice_mut() else {
            return Err(TractError::msg("a new tensor is contiguous"));
        };
        self.run(input, kernel, bias, out);
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for DepthwiseClip {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        if inputs.len() != 3 {
            return Err(TractError::msg("DepthwiseClip takes data, kernel and bias"));
        }
        Ok(tvec!(f32::fact(self.output_shape())))
    }

    as_op!();
}

/// A 1x1 convolution (tract's `EinSum` of channel-inner activations with a
/// constant `[out, in]` weight matrix), its per-channel bias and its clamp
/// in one op and one pass, on `x86_pointwise`'s AVX-512F kernel: the
/// weights are packed once when the op is built, the activations read
/// where they lie (tract packs them before every product), and the bias
/// and clamp applied in registers. Put in place by
/// [`crate::inference::rewrite::fold::fuse_pointwise`] only where that kernel runs.
#[derive(Debug, Clone)]
pub struct PointwiseClip {
    /// Output shape (the input's, with `n` channels last; leading 1s of the
    /// input may be dropped, as tract's `EinSum` did).
    pub output_shape: Vec<usize>,
    pub low: f32,
    pub high: f32,
    pub weights: Arc<x86_pointwise::Pointwise>,
}

impl PartialEq for PointwiseClip {
    fn eq(&self, other: &Self) -> bool {
        self.output_shape == other.output_shape
            && self.low.to_bits() == other.low.to_bits()
            && self.high.to_bits() == other.high.to_bits()
            && (Arc::ptr_eq(&self.weights, &other.weights) || self.weights == other.weights)
    }
}

impl Eq for PointwiseClip {}

impl std::hash::Hash for PointwiseClip {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.output_shape.hash(state);
        self.low.to_bits().hash(state);
        self.high.to_bits().hash(state);
        self.weights.input_channels().hash(state);
        self.weights.output_channels().hash(state);
    }
}

impl PointwiseClip {
    /// Runs on `input` (rows of `k` channels) into `output` (rows of `n`).
    /// Inside a rayon pool of several threads (a worker's pool, running an
    /// inference alone) the rows are split in one band per thread; anywhere
    /// else on the calling thread only.
    pub fn run(&self, input: &[f32], output: &mut [f32]) {
        let (k, n) = (
            self.weights.input_channels(),
            self.weights.output_channels(),
        );
        // not worth a wake-up for less than a few hundred positions
        split_rows(output, n, 256, |first, rows_out| {
            let rows_in = &input[first * k..][..rows_out.len() / n * k];
            self.weights.run(rows_in, rows_out, self.low, self.high)
        });
    }
}

/// Fills `output`, rows of `row_len` values, with `work(first_row, part)`
/// (the rows from `first_row` on, as many as `part` holds). Inside a rayon
/// pool of several threads (a model worker's pool when its inference is
/// the only work: `[[model]] threads`) the rows are split in one part per
/// thread, each of at least `min_rows` rows; anywhere else (a worker's own
/// thread) on the calling thread alone, never on rayon's global pool.
pub(super) fn split_rows(
    output: &mut [f32],
    row_len: usize,
    min_rows: usize,
    work: impl Fn(usize, &mut [f32]) + Sync,
) {
    let rows = output.len() / row_len.max(1);
    let threads = match rayon::current_thread_index() {
        Some(_) => rayon::current_num_threads().min(rows / min_rows).max(1),
        None => 1,
    };
    if threads <= 1 {
        work(0, output);
        return;
    }
    let part = rows.div_ceil(threads);
    let work = &work;
    rayon::scope(|scope| {
        for (i, chunk) in output.chunks_mut(part * row_len).enumerate() {
            scope.spawn(move |_| work(i * part, chunk));
        }
    });
}

impl Op for PointwiseClip {
    fn name(&self) -> StaticName {
        "PointwiseClip".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{} -> {} channels, clamp to [{}, {}]",
            self.weights.input_channels(),
            self.weights.output_channels(),
            self.low,
            self.high
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for PointwiseClip {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (k, n) = (
            self.weights.input_channels(),
            self.weights.output_channels(),
        );
        let out_len: usize = self.output_shape.iter().product();
        let fits = |len: usize| len % k == 0 && len / k * n == out_len;
        eval_data_only(
            "PointwiseClip",
            &inputs,
            fits,
            &self.output_shape,
            |i, o| self.run(i, o),
        )
    }
}

impl TypedOp for PointwiseClip {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        data_only_fact("PointwiseClip", inputs, &self.output_shape)
    }

    as_op!();
}

/// The eval of a fused op whose one input is its data (its weights are its
/// own): the data as a contiguous f32 slice whose length `fits`, and a new
/// output tensor of `shape` that `compute` fills.
pub(super) fn eval_data_only(
    name: &str,
    inputs: &[TValue],
    fits: impl Fn(usize) -> bool,
    shape: &[usize],
    compute: impl FnOnce(&[f32], &mut [f32]),
) -> TractResult<TVec<TValue>> {
    if inputs.len() != 1 {
        return Err(TractError::msg(format!("{name} takes its data only")));
    }
    let view = inputs[0].to_plain_array_view::<f32>()?;
    let Some(input) = view.to_slice() else {
        return Err(TractError::msg(format!("{name} needs contiguous input")));
    };
    if !fits(input.len()) {
        return Err(TractError::msg(format!(
            "{name}: input does not match its shape"
        )));
    }
    let mut output = Tensor::zero::<f32>(shape)?;
    let mut out_view = output.to_plain_array_view_mut::<f32>()?;
    let Some(out) = out_view.as_slice_mut() else {
        return Err(TractError::msg("a new tensor is contiguous"));
    };
    compute(input, out);
    Ok(tvec!(output.into_tvalue()))
}

/// The output fact of a fused op whose one input is its data.
pub(super) fn data_only_fact(
    name: &str,
    inputs: &[&TypedFact],
    shape: &[usize],
) -> TractResult<TVec<TypedFact>> {
    if inputs.len() != 1 {
        return Err(TractError::msg(format!("{name} takes its data only")));
    }
    Ok(tvec!(f32::fact(shape)))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The definition, one multiply-add at a time.
    fn naive(op: &DepthwiseClip, input: &[f32], kernel: &[f32], bias: &[f32]) -> Vec<f32> {
        let (h, w, c) = op.hwc();
        let (lo, hi) = (f32::from_bits(op.low), f32::from_bits(op.high));
        let mut out = vec![0f32; op.out_h * op.out_w * c];
        for oy in 0..op.out_h {
            for ox in 0..op.out_w {
                for ch in 0..c {
                    let mut acc = bias[ch];
                    for ky in 0..op.kernel_h {
                        for kx in 0..op.kernel_w {
                            let y = (oy * op.stride_h + ky) as isize - op.pad_top as isize;
                            let x = (ox * op.stride_w + kx) as isize - op.pad_left as isize;
                            if y >= 0 && y < h as isize && x >= 0 && x < w as isize {
                                let i = (y as usize * w + x as usize) * c + ch;
                                acc += input[i] * kernel[(ky * op.kernel_w + kx) * c + ch];
                            }
                        }
                    }
                    out[(oy * op.out_w + ox) * c + ch] = acc.clamp(lo, hi);
                }
            }
        }
        out
    }

    /// A small deterministic generator (no dependency for a test).
    pub(in crate::inference::rewrite) fn values(n: usize, seed: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Also split over pools of 2 and 3 threads (bands of rows, the last
    /// one shorter): the very same values as on one thread.
    #[test]
    fn equals_the_definition_on_odd_shapes_edges_strides_and_paddings() {
        let pools: Vec<rayon::ThreadPool> = [2, 3]
            .iter()
            .map(|&n| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .unwrap()
            })
            .collect();
        let mut seed = 7;
        let mut cases = 0;
        for &(h, w) in &[(1, 1), (2, 3), (7, 5), (12, 9), (17, 16)] {
            for &c in &[1, 3, 8, 17, 32, 67] {
                for &k in &[1, 3, 5] {
                    for &s in &[1, 2] {
                        // TensorFlow SAME (more padding after), none, and
                        // explicit padding larger than the kernel's reach.
                        for &(pad_top, pad_left, extra) in
                            &[(k / 2, k / 2, 0), (0, 0, 0), (2, 1, 3)]
                        {
                            let (ph, pw) = (h + pad_top + extra, w + pad_left + extra);
                            if ph < k || pw < k {
                                continue;
                            }
                            let op = DepthwiseClip {
                                input_shape: vec![1, h, w, c],
                                kernel_h: k,
                                kernel_w: k,
                                stride_h: s,
                                stride_w: s,
                                pad_top,
                                pad_left,
                                out_h: (ph - k) / s + 1,
                                out_w: (pw - k) / s + 1,
                                low: 0f32.to_bits(),
                                high: 0.5f32.to_bits(),
                            };
                            let input = values(h * w * c, &mut seed);
                            let kernel = values(k * k * c, &mut seed);
                            let bias = values(c, &mut seed);
                            let mut got = vec![f32::NAN; op.out_h * op.out_w * c];
                            op.run(&input, &kernel, &bias, &mut got);
                            let want = naive(&op, &input, &kernel, &bias);
                            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                                assert!((g - w).abs() <= 1e-5, "{op:?} at {i}: {g} vs {w}");
                            }
                            for pool in &pools {
                                let mut split = vec![f32::NAN; got.len()];
                                pool.install(|| op.run(&input, &kernel, &bias, &mut split));
                                let same = split
                                    .iter()
                                    .zip(&got)
                                    .all(|(a, b)| a.to_bits() == b.to_bits());
                                assert!(same, "{op:?} on {} threads", pool.current_num_threads());
                            }
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert!(cases > 400, "{cases}");
    }
}
