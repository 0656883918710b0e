//! Channel-inner (NHWC) depthwise convolution kernels for tract on x86-64.
//!
//! tract 0.23 runs a depthwise convolution whose channels are the contiguous
//! axis (every TensorFlow graph: NHWC) through one routine of its kernel
//! registry, [`tract_linalg::routines::depthwise_c_f32`]. tract ships that
//! routine for aarch64 and wasm only; on x86-64 the convolution falls back to
//! a scalar loop built for baseline x86-64, 4-10x slower than the matrix
//! products around it.
//!
//! This crate fills the gap without forking tract: the registry is an open
//! `inventory` collection, so linking this crate adds three routines to it,
//! and tract's own dispatch (`best_for`: an architecture kernel over a generic
//! one, then the highest instruction-set level the machine offers) picks one
//! at run time:
//!
//! | routine | needs | width |
//! |---|---|---|
//! | `x86_64_avx512f_depthwise_c_f32` | AVX-512F | 16 channels, masked tail |
//! | `x86_64_avx2_fma_depthwise_c_f32` | AVX2 + FMA | 8 channels, masked tail |
//! | `portable_depthwise_c_f32` | nothing | written to auto-vectorize |
//!
//! Every kernel computes exactly the contract of
//! [`tract_linalg::routines::DepthwiseCF32`] (see there): output point `i`,
//! channel `c` is `bias[c]` plus every
//! `kernel[tap_indices[t] * k_stride + c] * input[i * in_stride + offsets[t] + c]`.
//! The SIMD ones use fused multiply-adds, so results differ from tract's
//! scalar loop by rounding only (well under 1e-5 on unit-scale data).
//!
//! Nothing in a program refers to an `inventory` item by name, and a linker
//! may drop an object file nothing refers to: call [`ensure_linked`] once (it
//! also says which kernel this machine will run).
//!
//! Padding, strides, dilation and kernel size are not the kernel's business:
//! tract's zone walk hands it one run of output positions at a time with the
//! taps that are valid for the whole run, so 3x3 and 5x5, strides 1 and 2,
//! TensorFlow `SAME` and explicit padding all arrive here as tap lists.

use tract_data::prelude::DatumType;
use tract_linalg::isa::{Arch, Isa, IsaReq};
use tract_linalg::routines::{Func, Routine, RoutineFactory};

pub mod portable;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

/// Name of the portable kernel, as the registry reports it.
pub const PORTABLE: &str = "portable_depthwise_c_f32";
/// Name of the AVX2+FMA kernel.
pub const AVX2_FMA: &str = "x86_64_avx2_fma_depthwise_c_f32";
/// Name of the AVX-512F kernel.
pub const AVX512F: &str = "x86_64_avx512f_depthwise_c_f32";

inventory::submit! {
    Routine {
        func: Func::DepthwiseC,
        arch: None,
        isa: IsaReq::ANY,
        boost: 0,
        round_trip: false,
        factory: RoutineFactory::DepthwiseCF32 { name: PORTABLE, run: portable::depthwise_c_f32 },
    }
}

#[cfg(target_arch = "x86_64")]
inventory::submit! {
    Routine {
        func: Func::DepthwiseC,
        arch: Some(Arch::X86_64),
        isa: IsaReq::ANY.needing(&[Isa::X86_64Avx2, Isa::X86_64Fma]),
        boost: 0,
        round_trip: false,
        factory: RoutineFactory::DepthwiseCF32 { name: AVX2_FMA, run: x86_64::depthwise_c_f32_avx2_fma },
    }
}

#[cfg(target_arch = "x86_64")]
inventory::submit! {
    Routine {
        func: Func::DepthwiseC,
        arch: Some(Arch::X86_64),
        isa: IsaReq::ANY.needing(&[Isa::X86_64Avx512f]),
        boost: 0,
        round_trip: false,
        factory: RoutineFactory::DepthwiseCF32 { name: AVX512F, run: x86_64::depthwise_c_f32_avx512f },
    }
}

/// Keeps this crate's registrations in the final binary, and names the
/// channel-inner depthwise kernel tract will run on this machine (which may be
/// another crate's, on an architecture that has its own).
pub fn ensure_linked() -> Option<&'static str> {
    let isa = tract_linalg::isa::native();
    tract_linalg::routines::best_for(Func::DepthwiseC, DatumType::F32, &isa).map(|r| r.name())
}

/// Every depthwise kernel of this crate that this machine can run, by name,
/// best last: for tests and benchmarks that want to call one directly. Read
/// from tract's registry, so what "can run" means is what the registrations
/// above declare.
pub fn runnable_here() -> Vec<(&'static str, tract_linalg::routines::DepthwiseCF32)> {
    let isa = tract_linalg::isa::native();
    [PORTABLE, AVX2_FMA, AVX512F]
        .into_iter()
        .filter_map(|ours| {
            tract_linalg::routines::declared()
                .filter(|r| r.func == Func::DepthwiseC && r.runnable_on(&isa))
                .find_map(|r| match r.factory {
                    RoutineFactory::DepthwiseCF32 { name, run } if name == ours => {
                        Some((name, run))
                    }
                    _ => None,
                })
        })
        .collect()
}

/// One channel-inner depthwise run with the best kernel of tract's registry
/// for this machine, bounds checked: `len` output positions of `channels`
/// contiguous channels, position `i` channel `c` being `bias[c]` plus every
/// `kernel[taps[t] * channels + c] * input[i * in_stride + offsets[t] + c]`.
/// For ops that walk the positions themselves (a fused convolution and
/// activation). Panics if a slice is too short for what it describes.
#[allow(clippy::too_many_arguments)]
pub fn run_channels(
    input: &[f32],
    output: &mut [f32],
    kernel: &[f32],
    taps: &[usize],
    offsets: &[isize],
    bias: &[f32],
    channels: usize,
    len: usize,
    in_stride: usize,
) {
    let run = tract_linalg::routines::depthwise_c_f32().unwrap_or(portable::depthwise_c_f32);
    checked_run(
        run, input, output, kernel, taps, offsets, bias, channels, len, in_stride,
    )
}

/// [`run_channels`] on this crate's kernel named `name` ([`AVX512F`],
/// [`AVX2_FMA`], [`PORTABLE`]), for a program that times them against each
/// other; `false` (and nothing computed) if this machine cannot run it.
#[allow(clippy::too_many_arguments)]
pub fn run_channels_with(
    name: &str,
    input: &[f32],
    output: &mut [f32],
    kernel: &[f32],
    taps: &[usize],
    offsets: &[isize],
    bias: &[f32],
    channels: usize,
    len: usize,
    in_stride: usize,
) -> bool {
    let Some((_, run)) = runnable_here().into_iter().find(|(n, _)| *n == name) else {
        return false;
    };
    checked_run(
        run, input, output, kernel, taps, offsets, bias, channels, len, in_stride,
    );
    true
}

/// Checks the routine's contract, then runs `routine`, which must be one
/// this machine runs (tract's registry's answer, or [`runnable_here`]'s).
#[allow(clippy::too_many_arguments)]
fn checked_run(
    routine: tract_linalg::routines::DepthwiseCF32,
    input: &[f32],
    output: &mut [f32],
    kernel: &[f32],
    taps: &[usize],
    offsets: &[isize],
    bias: &[f32],
    channels: usize,
    len: usize,
    in_stride: usize,
) {
    assert_eq!(taps.len(), offsets.len());
    assert!(bias.len() >= channels && output.len() >= len * channels);
    if len == 0 || channels == 0 {
        return;
    }
    for (&tap, &offset) in taps.iter().zip(offsets) {
        assert!(offset >= 0, "a tap before the input");
        let last = offset as usize + (len - 1) * in_stride + channels;
        assert!(last <= input.len(), "a tap past the input");
        assert!(
            (tap + 1) * channels <= kernel.len(),
            "a tap past the kernel"
        );
    }
    // SAFETY: the asserts above are the routine's contract (every read of
    // input, kernel and bias is in bounds, every write of output too), and
    // `routine` runs on this machine (both callers take it from tract's
    // registry, filtered by what the machine runs).
    unsafe {
        routine(
            input.as_ptr(),
            output.as_mut_ptr(),
            kernel.as_ptr(),
            taps,
            offsets,
            bias.as_ptr(),
            channels,
            channels,
            len,
            in_stride as isize,
            channels as isize,
        )
    }
}
