//! The kernel for machines with no SIMD kernel of their own: plain Rust over
//! fixed-size channel blocks, which the compiler vectorizes for whatever the
//! build targets (SSE2 on baseline x86-64).

/// Channels per block: two SSE registers, one AVX register.
const BLOCK: usize = 8;

/// Portable channel-inner depthwise run; the contract is
/// [`tract_linalg::routines::DepthwiseCF32`]'s.
///
/// # Safety
/// As [`tract_linalg::routines::DepthwiseCF32`] states: every tap of every
/// output position readable for `channels` values, `channels` bias values
/// readable, and `channels` values writable at each output position.
#[allow(clippy::too_many_arguments)]
pub unsafe fn depthwise_c_f32(
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
    // SAFETY: every pointer below stays within what the contract makes
    // readable (input taps, kernel rows, bias) or writable (outputs) for
    // `channels` values: blocks of BLOCK channels below `channels`, then the
    // channels left one at a time.
    unsafe {
        for i in 0..len as isize {
            let x = input.offset(i * in_stride);
            let y = output.offset(i * out_stride);
            let mut c = 0;
            while c + BLOCK <= channels {
                let mut acc = [0f32; BLOCK];
                acc.copy_from_slice(std::slice::from_raw_parts(bias.add(c), BLOCK));
                for (&t, &off) in tap_indices.iter().zip(offsets) {
                    let k = &*(kernel.add(t * k_stride + c) as *const [f32; BLOCK]);
                    let v = &*(x.offset(off).add(c) as *const [f32; BLOCK]);
                    for j in 0..BLOCK {
                        acc[j] += k[j] * v[j];
                    }
                }
                std::ptr::copy_nonoverlapping(acc.as_ptr(), y.add(c), BLOCK);
                c += BLOCK;
            }
            while c < channels {
                let mut sum = *bias.add(c);
                for (&t, &off) in tap_indices.iter().zip(offsets) {
                    sum += *kernel.add(t * k_stride + c) * *x.offset(off).add(c);
                }
                *y.add(c) = sum;
                c += 1;
            }
        }
    }
}
