//! A 1x1 convolution over channel-inner (NHWC) data, with its bias and an
//! optional clamp (ReLU6) in the same pass, for x86-64 with AVX-512F.
//!
//! `output[p][n] = clamp(bias[n] + sum_k input[p][k] * weights[n][k])` for
//! `m` positions `p`, `k` input channels and `n` output channels: a matrix
//! product whose activations are read where they lie (a row of `k`
//! channels per position, no packing per run) and whose weights, a
//! constant, are packed once ([`Pointwise::new`]) into panels of 64 output
//! channels. The kernel keeps a tile of positions x output vectors in
//! registers (6 x 4, 8 x 3, 12 x 2 or 24 x 1 vectors of 16 channels, so that
//! every panel width keeps 24 accumulators busy), walks the input channels
//! with one broadcast of each input value and one load of each weight
//! vector, then adds nothing more: the bias was the accumulators' start and
//! the clamp is applied in registers before the only store.
//!
//! Three kernels compute it ([`Kernel`]): AVX-512F (the tile above),
//! AVX2 + FMA (tiles of 6 positions x 2 vectors of 8 channels: 12
//! accumulators, 2 weight vectors and a broadcast in the 16 registers),
//! and a plain loop. [`Pointwise::run`] uses the kernel chosen for the
//! process ([`set_kernel`]; by default the best the machine runs,
//! [`Kernel::best`]).

use std::sync::atomic::{AtomicU8, Ordering};

/// A kernel of this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Needs AVX-512F.
    Avx512f,
    /// Needs AVX2 and FMA.
    Avx2Fma,
    /// Needs nothing: one multiply-add at a time.
    Plain,
}

impl Kernel {
    /// The name logs and reports use.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Avx512f => "avx512f",
            Kernel::Avx2Fma => "avx2_fma",
            Kernel::Plain => "portable",
        }
    }

    /// Whether this machine can run the kernel.
    pub fn runs_here(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Kernel::Avx512f => std::arch::is_x86_feature_detected!("avx512f"),
                Kernel::Avx2Fma => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
                Kernel::Plain => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Kernel::Plain
        }
    }

    /// The fastest kernel this machine runs.
    pub fn best() -> Kernel {
        [Kernel::Avx512f, Kernel::Avx2Fma]
            .into_iter()
            .find(|k| k.runs_here())
            .unwrap_or(Kernel::Plain)
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }
}

/// The process's kernel: 0 until chosen, then `Kernel::code`.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

/// Chooses the kernel [`Pointwise::run`] uses from now on, or refuses one
/// this machine cannot run (and keeps the one before).
pub fn set_kernel(kernel: Kernel) -> Result<(), Kernel> {
    if !kernel.runs_here() {
        return Err(kernel);
    }
    CHOSEN.store(kernel.code(), Ordering::Relaxed);
    Ok(())
}

/// The kernel [`Pointwise::run`] uses: the one set, or the best.
pub fn kernel() -> Kernel {
    match CHOSEN.load(Ordering::Relaxed) {
        1 => Kernel::Avx512f,
        2 => Kernel::Avx2Fma,
        3 => Kernel::Plain,
        _ => Kernel::best(),
    }
}

/// Output channels per packed panel: four vectors of 16.
const PANEL: usize = 64;

/// Weights and bias of one 1x1 convolution, packed for the kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct Pointwise {
    k: usize,
    n: usize,
    /// For each panel of 64 output channels: `k` rows of 64 weights (zero
    /// past `n`).
    panels: Vec<f32>,
    /// `n` biases, zero-padded to whole panels.
    bias: Vec<f32>,
    /// `weights[n][k]` as given, for the plain loop.
    plain: Vec<f32>,
}

impl Pointwise {
    /// Packs `weights` (`n` rows of `k`: output channel major, as
    /// TensorFlow's 1x1 kernel `[1, 1, k, n]` transposed) and `bias` (`n`).
    pub fn new(weights: &[f32], bias: &[f32], n: usize, k: usize) -> Pointwise {
        assert_eq!(weights.len(), n * k, "weights are n x k");
        assert_eq!(bias.len(), n, "one bias per output channel");
        let panels_count = n.div_ceil(PANEL);
        let mut panels = vec![0f32; panels_count * k * PANEL];
        for o in 0..n {
            let (panel, col) = (o / PANEL, o % PANEL);
            for i in 0..k {
                panels[(panel * k + i) * PANEL + col] = weights[o * k + i];
            }
        }
        let mut padded = vec![0f32; panels_count * PANEL];
        padded[..n].copy_from_slice(bias);
        Pointwise {
            k,
            n,
            panels,
            bias: padded,
            plain: weights.to_vec(),
        }
    }

    pub fn input_channels(&self) -> usize {
        self.k
    }

    pub fn output_channels(&self) -> usize {
        self.n
    }

    /// Computes `input.len() / k` positions (`input`: rows of `k`) into
    /// `output` (rows of `n`), clamped to `[low, high]` (infinite bounds for
    /// no clamp), on the process's kernel ([`kernel`]).
    pub fn run(&self, input: &[f32], output: &mut [f32], low: f32, high: f32) {
        self.run_on(kernel(), input, output, low, high)
    }

    /// Like [`run`](Self::run), on `with` (the plain loop where this
    /// machine cannot run `with`).
    pub fn run_on(&self, with: Kernel, input: &[f32], output: &mut [f32], low: f32, high: f32) {
        assert!(
            self.k > 0 && input.len().is_multiple_of(self.k),
            "whole input rows"
        );
        let m = input.len() / self.k;
        assert_eq!(output.len(), m * self.n, "one output row per input row");
        #[cfg(target_arch = "x86_64")]
        match with {
            Kernel::Avx512f if with.runs_here() => {
                // SAFETY: AVX-512F is present (checked above); the slices'
                // lengths were checked against m, k and n, and the panels
                // and padded bias hold whole panels (`x86::run`'s contract).
                unsafe { x86::run(self, input, output, m, low, high) };
                return;
            }
            Kernel::Avx2Fma if with.runs_here() => {
                // SAFETY: AVX2 and FMA are present (checked above); the same
                // lengths as for the AVX-512F kernel (`avx2::run`'s contract).
                unsafe { avx2::run(self, input, output, m, low, high) };
                return;
            }
            _ => {}
        }
        self.run_plain(input, output, low, high);
    }

    /// The definition, one multiply-add at a time (also the reference the
    /// tests hold the kernel to).
    pub fn run_plain(&self, input: &[f32], output: &mut [f32], low: f32, high: f32) {
        for (row, out) in input
            .chunks_exact(self.k)
            .zip(output.chunks_exact_mut(self.n))
        {
            for (o, y) in out.iter_mut().enumerate() {
                let w = &self.plain[o * self.k..(o + 1) * self.k];
                let sum: f32 = row.iter().zip(w).map(|(a, b)| a * b).sum();
                let v = self.bias[o] + sum;
                let v = if v < low { low } else { v };
                *y = if v > high { high } else { v };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Pointwise, PANEL};
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX-512F must be available; `input` holds `m * op.k` values and
    /// `output` `m * op.n`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn run(
        op: &Pointwise,
        input: &[f32],
        output: &mut [f32],
        m: usize,
        low: f32,
        high: f32,
    ) {
        let (lo, hi) = (_mm512_set1_ps(low), _mm512_set1_ps(high));
        for panel in 0..op.n.div_ceil(PANEL) {
            let first = panel * PANEL;
            let width = (op.n - first).min(PANEL);
            let vectors = width.div_ceil(16);
            let tail = width - (vectors - 1) * 16;
            let mask: __mmask16 = if tail == 16 {
                0xFFFF
            } else {
                (1u16 << tail) - 1
            };
            let args = Args {
                input: input.as_ptr(),
                k: op.k,
                weights: op.panels.as_ptr().add(panel * op.k * PANEL),
                bias: op.bias.as_ptr().add(first),
                output: output.as_mut_ptr().add(first),
                n: op.n,
                mask,
                lo,
                hi,
            };
            match vectors {
                1 => rows::<24, 1>(&args, m),
                2 => rows::<12, 2>(&args, m),
                3 => rows::<8, 3>(&args, m),
                _ => rows::<6, 4>(&args, m),
            }
        }
    }

    struct Args {
        input: *const f32,
        k: usize,
        /// `k` rows of `PANEL` weights.
        weights: *const f32,
        /// `PANEL` biases.
        bias: *const f32,
        /// Column `first` of output row 0.
        output: *mut f32,
        n: usize,
        /// Lanes of the last vector that are output channels.
        mask: __mmask16,
        lo: __m512,
        hi: __m512,
    }

    /// All `m` positions, `P` at a time, then one at a time.
    #[target_feature(enable = "avx512f")]
    unsafe fn rows<const P: usize, const V: usize>(a: &Args, m: usize) {
        let mut p = 0;
        while p + P <= m {
            tile::<P, V>(a, p);
            p += P;
        }
        while p < m {
            tile::<1, V>(a, p);
            p += 1;
        }
    }

    /// Positions `p0 .. p0 + P`, `V` vectors of output channels.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tile<const P: usize, const V: usize>(a: &Args, p0: usize) {
        let mut acc = [[_mm512_setzero_ps(); V]; P];
        for v in 0..V {
            let b = _mm512_loadu_ps(a.bias.add(v * 16));
            for row in acc.iter_mut() {
                row[v] = b;
            }
        }
        let rows = a.input.add(p0 * a.k);
        for i in 0..a.k {
            let wrow = a.weights.add(i * PANEL);
            let mut w = [_mm512_setzero_ps(); V];
            for (v, wv) in w.iter_mut().enumerate() {
                *wv = _mm512_loadu_ps(wrow.add(v * 16));
            }
            for (p, row) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*rows.add(p * a.k + i));
                for v in 0..V {
                    row[v] = _mm512_fmadd_ps(x, w[v], row[v]);
                }
            }
        }
        for (p, row) in acc.iter().enumerate() {
            let out = a.output.add((p0 + p) * a.n);
            for (v, r) in row.iter().enumerate() {
                let r = _mm512_min_ps(_mm512_max_ps(*r, a.lo), a.hi);
                if v + 1 == V {
                    _mm512_mask_storeu_ps(out.add(v * 16), a.mask, r);
                } else {
                    _mm512_storeu_ps(out.add(v * 16), r);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Pointwise, PANEL};
    use std::arch::x86_64::*;

    /// Positions per tile: 6 x 2 accumulators, 2 weight vectors and one
    /// broadcast fill 15 of the 16 vector registers.
    const P: usize = 6;

    /// # Safety
    /// AVX2 and FMA must be available; `input` holds `m * op.k` values and
    /// `output` `m * op.n`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn run(
        op: &Pointwise,
        input: &[f32],
        output: &mut [f32],
        m: usize,
        low: f32,
        high: f32,
    ) {
        let (lo, hi) = (_mm256_set1_ps(low), _mm256_set1_ps(high));
        for panel in 0..op.n.div_ceil(PANEL) {
            let first = panel * PANEL;
            let width = (op.n - first).min(PANEL);
            // Strips of 16 channels (two vectors) across the panel.
            for strip in (0..width).step_by(16) {
                let channels = (width - strip).min(16);
                let args = Args {
                    input: input.as_ptr(),
                    k: op.k,
                    // SAFETY: within the panel (`strip` < `PANEL`).
                    weights: op.panels.as_ptr().add(panel * op.k * PANEL + strip),
                    bias: op.bias.as_ptr().add(first + strip),
                    output: output.as_mut_ptr().add(first + strip),
                    n: op.n,
                    mask: tail_mask(channels),
                    lo,
                    hi,
                };
                if channels > 8 {
                    rows::<2>(&args, m);
                } else {
                    rows::<1>(&args, m);
                }
            }
        }
    }

    /// Lanes of the strip's last vector that are output channels, as
    /// `_mm256_maskstore_ps` reads them (the sign bit of each lane).
    #[target_feature(enable = "avx2")]
    unsafe fn tail_mask(channels: usize) -> __m256i {
        let last = channels - (channels - 1) / 8 * 8;
        let lanes: [i32; 8] = std::array::from_fn(|l| if l < last { -1 } else { 0 });
        // SAFETY: `lanes` is 8 i32 values, one unaligned 256-bit load.
        _mm256_loadu_si256(lanes.as_ptr().cast())
    }

    struct Args {
        input: *const f32,
        k: usize,
        /// Row 0 of the strip's weights; rows are `PANEL` apart.
        weights: *const f32,
        /// The strip's biases (whole vectors: the bias is zero-padded).
        bias: *const f32,
        /// The strip's column of output row 0.
        output: *mut f32,
        n: usize,
        mask: __m256i,
        lo: __m256,
        hi: __m256,
    }

    /// All `m` positions, `P` at a time, then one at a time.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn rows<const V: usize>(a: &Args, m: usize) {
        let mut p = 0;
        while p + P <= m {
            tile::<P, V>(a, p);
            p += P;
        }
        while p < m {
            tile::<1, V>(a, p);
            p += 1;
        }
    }

    /// Positions `p0 .. p0 + R`, `V` vectors of 8 output channels.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tile<const R: usize, const V: usize>(a: &Args, p0: usize) {
        let mut acc = [[_mm256_setzero_ps(); V]; R];
        for v in 0..V {
            let b = _mm256_loadu_ps(a.bias.add(v * 8));
            for row in acc.iter_mut() {
                row[v] = b;
            }
        }
        let rows = a.input.add(p0 * a.k);
        for i in 0..a.k {
            let wrow = a.weights.add(i * PANEL);
            let mut w = [_mm256_setzero_ps(); V];
            for (v, wv) in w.iter_mut().enumerate() {
                *wv = _mm256_loadu_ps(wrow.add(v * 8));
            }
            for (p, row) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*rows.add(p * a.k + i));
                for v in 0..V {
                    row[v] = _mm256_fmadd_ps(x, w[v], row[v]);
                }
            }
        }
        for (p, row) in acc.iter().enumerate() {
            let out = a.output.add((p0 + p) * a.n);
            for (v, r) in row.iter().enumerate() {
                let r = _mm256_min_ps(_mm256_max_ps(*r, a.lo), a.hi);
                if v + 1 == V {
                    _mm256_maskstore_ps(out.add(v * 8), a.mask, r);
                } else {
                    _mm256_storeu_ps(out.add(v * 8), r);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Every panel width (1-4 vectors, masked or whole), tile remainders,
    /// several panels, clamped and not; equal to the plain loop within
    /// rounding (fused multiply-adds, another summation order).
    #[test]
    fn equals_the_definition_on_every_width_and_remainder() {
        let mut seed = 3;
        let mut cases = 0;
        let kernels: Vec<Kernel> = [Kernel::Avx512f, Kernel::Avx2Fma, Kernel::Plain]
            .into_iter()
            .filter(|k| k.runs_here())
            .collect();
        for &n in &[1, 7, 16, 17, 24, 32, 40, 48, 63, 64, 65, 96, 144, 200] {
            for &k in &[1, 3, 16, 24, 97] {
                for &m in &[1, 5, 6, 7, 13, 24, 25, 49, 50] {
                    let op = Pointwise::new(&values(n * k, &mut seed), &values(n, &mut seed), n, k);
                    let input = values(m * k, &mut seed);
                    for (lo, hi) in [(f32::NEG_INFINITY, f32::INFINITY), (0.0, 0.5)] {
                        let mut want = vec![f32::NAN; m * n];
                        op.run_plain(&input, &mut want, lo, hi);
                        for &kernel in &kernels {
                            let mut got = vec![f32::NAN; m * n];
                            op.run_on(kernel, &input, &mut got, lo, hi);
                            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                                let tol = 1e-5 * (1.0 + k as f32).sqrt() * 4.0;
                                assert!(
                                    (g - w).abs() <= tol,
                                    "{kernel:?}: n {n} k {k} m {m} at {i}: {g} vs {w}"
                                );
                            }
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert!(cases > 1000, "{cases}");
        println!("kernels: {kernels:?}");
    }
}
