//! AVX2+FMA and AVX-512F kernels.
//!
//! One generic body, [`run`], written against [`Lanes`] (a vector of `W`
//! f32 lanes and a mask for the last, partial vector of channels), and one
//! entry point per instruction set that enables its features and inlines the
//! body. Inside a run of output positions the body takes them four at a time
//! and the channels two vectors at a time: each kernel tap is loaded once for
//! four positions, and eight independent accumulators keep both FMA ports
//! busy. Channel counts that are not a multiple of the vector width end in
//! one masked vector, which neither reads nor writes past `channels`.

use std::arch::x86_64::*;

/// A SIMD register of `W` f32 lanes, and its partial-vector mask.
trait Lanes {
    type V: Copy;
    type M: Copy;
    const W: usize;
    unsafe fn mask(rem: usize) -> Self::M;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn load_masked(p: *const f32, m: Self::M) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    unsafe fn store_masked(p: *mut f32, m: Self::M, v: Self::V);
    /// `a * b + c`, one rounding.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
}

struct Avx512;

impl Lanes for Avx512 {
    type V = __m512;
    type M = __mmask16;
    const W: usize = 16;
    #[inline(always)]
    unsafe fn mask(rem: usize) -> __mmask16 {
        ((1u32 << rem) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: the caller passes 16 readable f32 at `p` (a full vector
        // inside the contract's buffers) on a CPU with AVX-512F.
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __mmask16) -> __m512 {
        // SAFETY: masked-off lanes are not read; the caller passes `m` with
        // only the lanes inside the buffer set, on a CPU with AVX-512F.
        unsafe { _mm512_maskz_loadu_ps(m, p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: the caller passes 16 writable f32 at `p`, inside the
        // output the contract hands over, on a CPU with AVX-512F.
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __mmask16, v: __m512) {
        // SAFETY: masked-off lanes are not written; the caller sets only the
        // lanes inside the output, on a CPU with AVX-512F.
        unsafe { _mm512_mask_storeu_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        // SAFETY: register arithmetic only; the caller runs on AVX-512F.
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
}

struct Avx2Fma;

impl Lanes for Avx2Fma {
    type V = __m256;
    type M = __m256i;
    const W: usize = 8;
    #[inline(always)]
    unsafe fn mask(rem: usize) -> __m256i {
        // SAFETY: register arithmetic only; the caller runs on AVX2.
        unsafe {
            _mm256_cmpgt_epi32(
                _mm256_set1_epi32(rem as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            )
        }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: the caller passes 8 readable f32 at `p` (a full vector
        // inside the contract's buffers) on a CPU with AVX.
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn load_masked(p: *const f32, m: __m256i) -> __m256 {
        // SAFETY: lanes whose mask sign bit is clear are not read (nor
        // fault); the caller sets only the lanes inside the buffer, on AVX.
        unsafe { _mm256_maskload_ps(p, m) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: the caller passes 8 writable f32 at `p`, inside the output
        // the contract hands over, on a CPU with AVX.
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn store_masked(p: *mut f32, m: __m256i, v: __m256) {
        // SAFETY: lanes whose mask sign bit is clear are not written; the
        // caller sets only the lanes inside the output, on AVX.
        unsafe { _mm256_maskstore_ps(p, m, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        // SAFETY: register arithmetic only; the caller runs on FMA.
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
}

/// The arguments of one call, as the registry's contract passes them.
#[derive(Clone, Copy)]
struct Call<'a> {
    kernel: *const f32,
    tap_indices: &'a [usize],
    offsets: &'a [isize],
    bias: *const f32,
    k_stride: usize,
}

#[inline(always)]
unsafe fn ld<L: Lanes, const MASKED: bool>(p: *const f32, m: L::M) -> L::V {
    // SAFETY: forwards `ld`'s own contract (a readable vector at `p`, or
    // the lanes `m` sets) to the load it picks.
    unsafe {
        if MASKED {
            L::load_masked(p, m)
        } else {
            L::load(p)
        }
    }
}

/// `P` output positions (inputs `xs`, outputs `ys`) by `Q` vectors of
/// channels from channel `c`; `MASKED` (then `Q == 1`) for the last, partial
/// vector.
#[inline(always)]
unsafe fn block<L: Lanes, const P: usize, const Q: usize, const MASKED: bool>(
    call: Call,
    xs: &[*const f32; P],
    ys: &[*mut f32; P],
    c: usize,
    m: L::M,
) {
    // SAFETY: `c + Q * W` channels (or the lanes `m` sets) lie inside the
    // bias, every kernel tap row (`t * k_stride`, t < taps) and every
    // position's input row at each tap offset, and the outputs `ys`: the
    // contract of `DepthwiseCF32` that `run` was called with guarantees
    // this for every channel below `channels`, and `positions` never
    // passes a vector beyond it.
    unsafe {
        let bias: [L::V; Q] =
            std::array::from_fn(|q| ld::<L, MASKED>(call.bias.add(c + q * L::W), m));
        let mut acc: [[L::V; Q]; P] = [bias; P];
        for (&t, &off) in call.tap_indices.iter().zip(call.offsets) {
            let kp = call.kernel.add(t * call.k_stride + c);
            let k: [L::V; Q] = std::array::from_fn(|q| ld::<L, MASKED>(kp.add(q * L::W), m));
            for p in 0..P {
                let xp = xs[p].offset(off).add(c);
                for q in 0..Q {
                    acc[p][q] = L::fma(ld::<L, MASKED>(xp.add(q * L::W), m), k[q], acc[p][q]);
                }
            }
        }
        for (y, row) in ys.iter().zip(&acc) {
            for (q, &v) in row.iter().enumerate() {
                let yp = y.add(c + q * L::W);
                if MASKED {
                    L::store_masked(yp, m, v)
                } else {
                    L::store(yp, v)
                }
            }
        }
    }
}

/// Every channel of `P` output positions.
#[inline(always)]
unsafe fn positions<L: Lanes, const P: usize>(
    call: Call,
    xs: &[*const f32; P],
    ys: &[*mut f32; P],
    channels: usize,
) {
    // SAFETY: each block covers channels below `channels` only (full
    // vectors below `full`, then one masked vector), as `block` requires.
    unsafe {
        let full = channels / L::W * L::W;
        let mut c = 0;
        while c + 2 * L::W <= full {
            block::<L, P, 2, false>(call, xs, ys, c, L::mask(0));
            c += 2 * L::W;
        }
        if c < full {
            block::<L, P, 1, false>(call, xs, ys, c, L::mask(0));
            c += L::W;
        }
        if c < channels {
            block::<L, P, 1, true>(call, xs, ys, c, L::mask(channels - c));
        }
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn run<L: Lanes>(
    input: *const f32,
    output: *mut f32,
    kernel: *const f32,
    tap_indices: &[usize],
    offsets: &[isize],
    bias: *const f32,
    channels: usize,
    k_stride: usize,
    len: usize,
    in_stride: isize,
    out_stride: isize,
) {
    // SAFETY: positions `i < len` at `in_stride`/`out_stride` are inside
    // the input and output by the contract of `DepthwiseCF32`, which the
    // public entry points require of their caller.
    unsafe {
        let call = Call {
            kernel,
            tap_indices,
            offsets,
            bias,
            k_stride,
        };
        let mut i = 0;
        while i + 4 <= len {
            let xs: [*const f32; 4] =
                std::array::from_fn(|p| input.offset((i + p) as isize * in_stride));
            let ys: [*mut f32; 4] =
                std::array::from_fn(|p| output.offset((i + p) as isize * out_stride));
            positions::<L, 4>(call, &xs, &ys, channels);
            i += 4;
        }
        while i < len {
            let xs = [input.offset(i as isize * in_stride)];
            let ys = [output.offset(i as isize * out_stride)];
            positions::<L, 1>(call, &xs, &ys, channels);
            i += 1;
        }
    }
}

/// An instruction set's entry point: a body with its features enabled, in
/// which [`run`] is inlined for its [`Lanes`], and the public function the
/// registry calls (a plain `unsafe fn`, which the body cannot be).
macro_rules! entry {
    ($(#[$doc:meta])* $name:ident, $body:ident, $features:literal, $lanes:ty) => {
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $body(
            input: *const f32,
            output: *mut f32,
            kernel: *const f32,
            tap_indices: &[usize],
            offsets: &[isize],
            bias: *const f32,
            channels: usize,
            k_stride: usize,
            len: usize,
            in_stride: isize,
            out_stride: isize,
        ) {
            // SAFETY: this body is compiled with `$features`, which the
            // entry point's caller guarantees the CPU has; the pointers
            // are the caller's, under the contract `run` relies on.
            unsafe {
                run::<$lanes>(
                    input, output, kernel, tap_indices, offsets, bias, channels, k_stride, len,
                    in_stride, out_stride,
                )
            }
        }

        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub unsafe fn $name(
            input: *const f32,
            output: *mut f32,
            kernel: *const f32,
            tap_indices: &[usize],
            offsets: &[isize],
            bias: *const f32,
            channels: usize,
            k_stride: usize,
            len: usize,
            in_stride: isize,
            out_stride: isize,
        ) {
            // SAFETY: the caller's contract (the `# Safety` section: the
            // CPU's features and `DepthwiseCF32`'s buffers) is `$body`'s.
            unsafe {
                $body(
                    input, output, kernel, tap_indices, offsets, bias, channels, k_stride, len,
                    in_stride, out_stride,
                )
            }
        }
    };
}

entry!(
    /// AVX-512F channel-inner depthwise run; the contract is
    /// [`tract_linalg::routines::DepthwiseCF32`]'s.
    ///
    /// # Safety
    /// That contract's, and the CPU must support AVX-512F.
    depthwise_c_f32_avx512f,
    avx512f_body,
    "avx512f",
    Avx512
);

entry!(
    /// AVX2+FMA channel-inner depthwise run; the contract is
    /// [`tract_linalg::routines::DepthwiseCF32`]'s.
    ///
    /// # Safety
    /// That contract's, and the CPU must support AVX2 and FMA.
    depthwise_c_f32_avx2_fma,
    avx2_fma_body,
    "avx2,fma",
    Avx2Fma
);
