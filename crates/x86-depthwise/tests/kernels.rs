//! The kernels against a scalar reference of the registry's contract, and
//! tract's depthwise convolution (which then runs them) against tract's own
//! W-inner path and a naive convolution, on random shapes.

use tract_core::internal::*;
use tract_core::ops::cnn::conv::{Conv, KernelFormat};
use tract_core::ops::cnn::{PaddingSpec, PoolSpec};
use tract_core::ops::nn::DataFormat;

/// A small deterministic generator: the tests need variety, not quality.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn unit(&mut self) -> f32 {
        (self.next() % 20001) as f32 / 10000.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.unit()).collect()
    }
}

#[test]
fn this_machine_runs_one_of_ours_on_x86_64() {
    let chosen = x86_depthwise::ensure_linked().expect("a depthwise_c kernel is registered");
    assert!(
        tract_linalg::routines::depthwise_c_f32().is_some(),
        "tract sees no channel-inner kernel"
    );
    if cfg!(target_arch = "x86_64") {
        let best = x86_depthwise::runnable_here().last().unwrap().0;
        assert_eq!(chosen, best);
    }
}

/// Every kernel this machine can run, on random calls, against the contract
/// computed in f64; the guard values around each output position and after
/// the last channel must survive.
#[test]
fn kernels_follow_the_contract() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let kernels = x86_depthwise::runnable_here();
    assert!(!kernels.is_empty());
    for case in 0..600 {
        let channels = 1 + rng.below(if case % 3 == 0 { 20 } else { 100 });
        let k_stride = channels + rng.below(3) * rng.below(17);
        let n_taps = [1, 2, 4, 9, 25, 7][rng.below(6)];
        let len = 1 + rng.below(13);
        // Input positions are whole channel vectors, as tract lays them out.
        let in_stride = (channels + rng.below(2) * 5) as isize * (1 + rng.below(2)) as isize;
        let out_stride = (channels + rng.below(2) * 3) as isize;
        let tap_indices: Vec<usize> = (0..n_taps).map(|_| rng.below(25)).collect();
        let offsets: Vec<isize> = (0..n_taps)
            .map(|_| rng.below(30) as isize * in_stride.max(1))
            .collect();
        let max_off = *offsets.iter().max().unwrap();
        let input = rng.vec((max_off + (len as isize) * in_stride) as usize + channels + 8);
        let kernel = rng.vec(25 * k_stride + channels);
        let bias = rng.vec(channels);
        let out_len = (len as isize * out_stride) as usize + 8;
        let mut expected = vec![f32::NAN; out_len];
        for i in 0..len {
            for c in 0..channels {
                let mut sum = bias[c] as f64;
                for (&t, &off) in tap_indices.iter().zip(&offsets) {
                    let x = input[(i as isize * in_stride + off) as usize + c];
                    sum += kernel[t * k_stride + c] as f64 * x as f64;
                }
                expected[i * out_stride as usize + c] = sum as f32;
            }
        }
        for (name, run) in &kernels {
            let mut out = vec![f32::NAN; out_len];
            // SAFETY: the buffers are sized for `len` positions at these
            // strides and every tap offset (as `expected` reads them), and
            // `kernels` lists only the kernels this CPU runs.
            unsafe {
                run(
                    input.as_ptr(),
                    out.as_mut_ptr(),
                    kernel.as_ptr(),
                    &tap_indices,
                    &offsets,
                    bias.as_ptr(),
                    channels,
                    k_stride,
                    len,
                    in_stride,
                    out_stride,
                )
            };
            for (ix, (got, want)) in out.iter().zip(&expected).enumerate() {
                if want.is_nan() {
                    assert!(
                        got.is_nan(),
                        "{name} case {case}: wrote outside its outputs at {ix}"
                    );
                } else {
                    assert!(
                        (got - want).abs() <= 1e-5,
                        "{name} case {case}: {got} != {want} at {ix} \
                         (channels {channels}, taps {n_taps}, len {len})"
                    );
                }
            }
        }
    }
}

/// One depthwise convolution: what the op-level test varies.
#[derive(Debug, Clone)]
struct Shape {
    h: usize,
    w: usize,
    c: usize,
    k: usize,
    stride: usize,
    /// `None`: TensorFlow `SAME`; else explicit (top, left, bottom, right).
    pad: Option<[usize; 4]>,
}

impl Shape {
    fn pads(&self) -> [usize; 4] {
        match self.pad {
            Some(p) => p,
            None => {
                let total = |n: usize| {
                    let out = n.div_ceil(self.stride);
                    ((out - 1) * self.stride + self.k).saturating_sub(n)
                };
                let (th, tw) = (total(self.h), total(self.w));
                [th / 2, tw / 2, th - th / 2, tw - tw / 2]
            }
        }
    }
    fn out_hw(&self) -> (usize, usize) {
        let [t, l, b, r] = self.pads();
        (
            (self.h + t + b - self.k) / self.stride + 1,
            (self.w + l + r - self.k) / self.stride + 1,
        )
    }
    fn padding(&self) -> PaddingSpec {
        match self.pad {
            None => PaddingSpec::SameUpper,
            Some([t, l, b, r]) => PaddingSpec::Explicit(tvec!(t, l), tvec!(b, r)),
        }
    }
}

/// The convolution done the obvious way, NHWC, kernel `[c][ky][kx]`.
fn naive(s: &Shape, x: &[f32], k: &[f32], b: &[f32]) -> Vec<f32> {
    let [t, l, _, _] = s.pads();
    let (oh, ow) = s.out_hw();
    let mut out = vec![0f32; oh * ow * s.c];
    for oy in 0..oh {
        for ox in 0..ow {
            for c in 0..s.c {
                let mut sum = b[c] as f64;
                for ky in 0..s.k {
                    for kx in 0..s.k {
                        let iy = (oy * s.stride + ky) as isize - t as isize;
                        let ix = (ox * s.stride + kx) as isize - l as isize;
                        if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                            continue;
                        }
                        let xv = x[(iy as usize * s.w + ix as usize) * s.c + c];
                        sum += xv as f64 * k[(c * s.k + ky) * s.k + kx] as f64;
                    }
                }
                out[(oy * ow + ox) * s.c + c] = sum as f32;
            }
        }
    }
    out
}

/// Runs tract's optimized depthwise convolution in `fmt` (NHWC runs the
/// channel-inner kernels, NCHW tract's own W-inner path); NHWC in and out.
fn tract_conv(s: &Shape, fmt: DataFormat, x: &[f32], k: &[f32], b: &[f32]) -> Vec<f32> {
    let mut model = TypedModel::default();
    let nhwc = Tensor::from_shape(&[1, s.h, s.w, s.c], x).unwrap();
    let input = if fmt == DataFormat::NHWC {
        nhwc
    } else {
        nhwc.permute_axes(&[0, 3, 1, 2]).unwrap()
    };
    let src = model.add_source("x", f32::fact(input.shape())).unwrap();
    let kc = model
        .add_const("k", Tensor::from_shape(&[s.c, 1, s.k, s.k], k).unwrap())
        .unwrap();
    let bc = model
        .add_const("b", Tensor::from_shape(&[s.c], b).unwrap())
        .unwrap();
    let pool_spec = PoolSpec {
        data_format: fmt,
        kernel_shape: tvec!(s.k, s.k),
        padding: s.padding(),
        dilations: None,
        strides: Some(tvec!(s.stride, s.stride)),
        input_channels: s.c,
        output_channels: s.c,
    };
    let conv = Conv {
        pool_spec,
        kernel_fmt: KernelFormat::OIHW,
        group: s.c,
        q_params: None,
    };
    let out = model.wire_node("dw", conv, &[src, kc, bc]).unwrap();
    model.select_output_outlets(&out).unwrap();
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    let y = plan
        .run(tvec!(input.into_tvalue()))
        .unwrap()
        .remove(0)
        .into_tensor();
    let y = if fmt == DataFormat::NHWC {
        y
    } else {
        y.permute_axes(&[0, 2, 3, 1]).unwrap()
    };
    y.to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

#[test]
fn tract_depthwise_with_these_kernels_matches_its_own_path_and_a_naive_one() {
    let mut rng = Rng(0x2545f4914f6cdd1d);
    let mut shapes = vec![
        // The shipped theme CNN's layers, shrunk in height and width.
        Shape {
            h: 16,
            w: 16,
            c: 32,
            k: 3,
            stride: 1,
            pad: None,
        },
        Shape {
            h: 17,
            w: 15,
            c: 96,
            k: 3,
            stride: 2,
            pad: None,
        },
        Shape {
            h: 14,
            w: 14,
            c: 144,
            k: 5,
            stride: 2,
            pad: None,
        },
        Shape {
            h: 7,
            w: 7,
            c: 672,
            k: 5,
            stride: 1,
            pad: None,
        },
        // Odd sizes: fewer channels than a vector, not a multiple of one.
        Shape {
            h: 5,
            w: 9,
            c: 3,
            k: 3,
            stride: 1,
            pad: None,
        },
        Shape {
            h: 9,
            w: 5,
            c: 17,
            k: 5,
            stride: 2,
            pad: Some([2, 1, 0, 2]),
        },
        Shape {
            h: 3,
            w: 3,
            c: 33,
            k: 3,
            stride: 1,
            pad: Some([1, 1, 1, 1]),
        },
        Shape {
            h: 6,
            w: 11,
            c: 40,
            k: 3,
            stride: 2,
            pad: Some([0, 0, 0, 0]),
        },
    ];
    for _ in 0..24 {
        let k = [3, 5][rng.below(2)];
        let h = k + rng.below(14);
        let w = k + rng.below(14);
        let pad = match rng.below(3) {
            0 => None,
            _ => Some([rng.below(k), rng.below(k), rng.below(k), rng.below(k)]),
        };
        shapes.push(Shape {
            h,
            w,
            c: 1 + rng.below(80),
            k,
            stride: 1 + rng.below(2),
            pad,
        });
    }
    for s in shapes {
        let x = rng.vec(s.h * s.w * s.c);
        let k = rng.vec(s.c * s.k * s.k);
        let b = rng.vec(s.c);
        let want = naive(&s, &x, &k, &b);
        let ours = tract_conv(&s, DataFormat::NHWC, &x, &k, &b);
        let theirs = tract_conv(&s, DataFormat::NCHW, &x, &k, &b);
        assert_eq!(ours.len(), want.len(), "{s:?}");
        assert_eq!(theirs.len(), want.len(), "{s:?}");
        for i in 0..want.len() {
            assert!(
                (ours[i] - want[i]).abs() <= 1e-5,
                "{s:?} at {i}: {} vs naive {}",
                ours[i],
                want[i]
            );
            assert!(
                (ours[i] - theirs[i]).abs() <= 1e-5,
                "{s:?} at {i}: {} vs tract's W-inner {}",
                ours[i],
                theirs[i]
            );
        }
    }
}
