//! Which convolution kernels run: `PREDICTD_KERNELS=avx512|avx2|portable|tract`
//! forces a family, unset is the best this machine runs. Chosen once, at
//! start, before tract looks at the machine.
//!
//! | family | depthwise | 1x1 (pointwise) | tract's own kernels |
//! |---|---|---|---|
//! | `avx512` | `x86-depthwise` AVX-512F | `x86-pointwise` AVX-512F | as the machine offers |
//! | `avx2` | AVX2+FMA | AVX2+FMA | as on a machine without AVX-512 |
//! | `portable` | portable loop | plain loop | generic (no AVX) |
//! | `tract` | tract's plan, none of predictd's rewrites or fused ops | tract's matrix products | as the machine offers |
//!
//! `avx2` and `portable` take the instruction sets above them out of what
//! tract sees (its `TRACT_CPU_ISA` knob), so one machine runs every family
//! as a machine of that kind would, and each can be tested and measured
//! side by side. With `tract`, tract's depthwise convolution still
//! dispatches through its kernel registry, where `x86-depthwise` is the
//! only x86-64 entry (tract ships none for x86-64); everything else is
//! tract's.
//!
//! An unknown value, or a family this CPU cannot run, is a start-up error.
//!
//! Unset, the family is chosen by measured speed where the machine runs
//! more than one: a self-benchmark of a few milliseconds at the first model
//! load times the AVX-512F and AVX2+FMA kernels on a 1x1 and a depthwise
//! convolution of the theme CNN's sizes, and keeps AVX-512F unless AVX2 is
//! faster by more than [`MARGIN`] (a CPU that slows its clock for AVX-512
//! may lose by it). The timings and the choice are logged.

use std::sync::OnceLock;

/// The environment variable that forces a family.
pub const VARIABLE: &str = "PREDICTD_KERNELS";

/// A family of kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Avx512,
    Avx2,
    Portable,
    Tract,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum KernelsError {
    #[error("{VARIABLE}={0:?} is no kernel family (avx512, avx2, portable or tract)")]
    Unknown(String),
    #[error("{VARIABLE}={family}: this CPU lacks {missing}")]
    NotHere {
        family: &'static str,
        missing: &'static str,
    },
}

/// Instruction sets above AVX2+FMA, as tract names them.
const ABOVE_AVX2: &str = "-avx512f,-avx512vnni,-avx512fp16,-avxvnni,-amx-int8,-amx-bf16";
/// AVX and above.
const AVX_AND_ABOVE: &str = "-avx,-avx2,-fma,-f16c";

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Avx512 => "avx512",
            Family::Avx2 => "avx2",
            Family::Portable => "portable",
            Family::Tract => "tract",
        }
    }

    fn parse(text: &str) -> Result<Family, KernelsError> {
        match text.trim() {
            "avx512" => Ok(Family::Avx512),
            "avx2" => Ok(Family::Avx2),
            "portable" => Ok(Family::Portable),
            "tract" => Ok(Family::Tract),
            other => Err(KernelsError::Unknown(other.to_string())),
        }
    }

    /// The best family this machine runs.
    fn best() -> Family {
        match x86_pointwise::Kernel::best() {
            x86_pointwise::Kernel::Avx512f => Family::Avx512,
            x86_pointwise::Kernel::Avx2Fma => Family::Avx2,
            x86_pointwise::Kernel::Plain => Family::Portable,
        }
    }

    /// The 1x1 kernel of the family (none for `tract`).
    fn pointwise(self) -> Option<x86_pointwise::Kernel> {
        match self {
            Family::Avx512 => Some(x86_pointwise::Kernel::Avx512f),
            Family::Avx2 => Some(x86_pointwise::Kernel::Avx2Fma),
            Family::Portable => Some(x86_pointwise::Kernel::Plain),
            Family::Tract => None,
        }
    }

    /// What is taken out of tract's view of the machine.
    fn tract_isa_edits(self) -> Option<String> {
        match self {
            Family::Avx512 | Family::Tract => None,
            Family::Avx2 => Some(ABOVE_AVX2.to_string()),
            Family::Portable => Some(format!("{AVX_AND_ABOVE},{ABOVE_AVX2}")),
        }
    }

    /// Checks the CPU can run the family.
    fn check(self) -> Result<(), KernelsError> {
        let missing = match self.pointwise() {
            Some(k) if !k.runs_here() => k,
            _ => return Ok(()),
        };
        Err(KernelsError::NotHere {
            family: self.name(),
            missing: match missing {
                x86_pointwise::Kernel::Avx512f => "AVX-512F",
                _ => "AVX2 and FMA",
            },
        })
    }
}

static CHOSEN: OnceLock<Result<Family, KernelsError>> = OnceLock::new();

/// The family `PREDICTD_KERNELS` forces, if any, checked against the CPU.
fn forced() -> Result<Option<Family>, KernelsError> {
    match std::env::var(VARIABLE) {
        Ok(text) if !text.trim().is_empty() => {
            let family = Family::parse(&text)?;
            family.check()?;
            Ok(Some(family))
        }
        _ => Ok(None),
    }
}

/// Whether `PREDICTD_KERNELS` names a family this CPU runs (or nothing):
/// the command line asks first thing, before anything is loaded.
pub fn validate() -> Result<(), KernelsError> {
    forced().map(|_| ())
}

/// Sets the family up, once: the forced one, or the one the self-benchmark
/// chooses; later calls return the same answer. A model load calls it
/// before tract looks at the machine.
pub fn init() -> Result<Family, KernelsError> {
    CHOSEN
        .get_or_init(|| {
            let family = match forced()? {
                Some(family) => family,
                None => measured(),
            };
            apply(family);
            Ok(family)
        })
        .clone()
}

/// AVX2 must be faster than AVX-512F by more than this share for the
/// self-benchmark to choose it: on a machine where both run at one clock,
/// AVX-512F wins clearly (the theme CNN 11.1 against 13.5-14.6 ms here),
/// and a noisy shared machine must not flip the choice back and forth.
pub const MARGIN: f64 = 0.10;

/// The family the self-benchmark chooses (the only one the machine runs,
/// where it runs one), logged with its timings.
fn measured() -> Family {
    let runs = |f: Family| f.check().is_ok();
    if !(runs(Family::Avx512) && runs(Family::Avx2)) {
        return Family::best();
    }
    let wide = bench(x86_pointwise::Kernel::Avx512f, x86_depthwise::AVX512F);
    let narrow = bench(x86_pointwise::Kernel::Avx2Fma, x86_depthwise::AVX2_FMA);
    let family = if narrow < wide * (1.0 - MARGIN) {
        Family::Avx2
    } else {
        Family::Avx512
    };
    log::info!(
        "kernels: self-benchmark (1x1 and depthwise convolutions, best of 7): \
         avx512 {wide:.3} ms, avx2 {narrow:.3} ms: family={}",
        family.name()
    );
    family
}

/// Milliseconds, best of seven, of one 1x1 convolution (28x28 positions,
/// 128 to 128 channels) and one 3x3 depthwise convolution (28x28, 128
/// channels, stride 1, inner taps) on the given kernels.
fn bench(pointwise: x86_pointwise::Kernel, depthwise: &str) -> f64 {
    let (m, c) = (28 * 28, 128);
    let values = |n: usize| -> Vec<f32> { (0..n).map(|i| ((i % 17) as f32 - 8.0) / 8.0).collect() };
    let op = x86_pointwise::Pointwise::new(&values(c * c), &values(c), c, c);
    let input = values(m * c);
    let mut output = vec![0f32; m * c];
    // Depthwise: one row of 26 inner positions at a time, 9 taps.
    let (w, len) = (28usize, 26usize);
    let taps: Vec<usize> = (0..9).collect();
    let offsets: Vec<isize> = (0..9)
        .map(|t| (((t / 3) * w + t % 3) * c) as isize)
        .collect();
    let (kernel, bias) = (values(9 * c), values(c));
    let mut best = f64::INFINITY;
    for _ in 0..7 {
        let started = std::time::Instant::now();
        op.run_on(pointwise, &input, &mut output, 0.0, 6.0);
        for row in 0..26 {
            let from = row * w * c;
            let out = &mut output[row * len * c..(row + 1) * len * c];
            x86_depthwise::run_channels_with(
                depthwise,
                &input[from..],
                out,
                &kernel,
                &taps,
                &offsets,
                &bias,
                c,
                len,
                c,
            );
        }
        best = best.min(started.elapsed().as_secs_f64() * 1000.0);
    }
    best
}

fn apply(family: Family) {
    if let Some(edits) = family.tract_isa_edits() {
        // The user's own edits (the environment) first, then the family's.
        let spec = match std::env::var("TRACT_CPU_ISA") {
            Ok(own) if !own.trim().is_empty() => format!("{own},{edits}"),
            _ => edits,
        };
        tract_tensorflow::tract_core::knobs::set_str("TRACT_CPU_ISA", &spec);
    }
    if let Some(kernel) = family.pointwise() {
        // Checked runnable by `Family::check`.
        let _ = x86_pointwise::set_kernel(kernel);
    }
}

/// The family in use ([`init`]'s; the machine's best if the variable was
/// refused, which the command line never lets happen).
pub fn family() -> Family {
    init().unwrap_or_else(|_| Family::best())
}

/// Whether predictd's graph rewrites and fused ops apply (all but `tract`).
pub fn rewrites() -> bool {
    family() != Family::Tract
}

/// The kernels in use, for the start-up log, `predictd check` and
/// `benches/compare.sh`'s header: the family, the depthwise kernel tract's
/// registry gives this machine and the 1x1 one.
pub fn describe() -> String {
    let depthwise = match depthwise_kernel() {
        x86_depthwise::AVX512F => "avx512f",
        x86_depthwise::AVX2_FMA => "avx2_fma",
        x86_depthwise::PORTABLE => "portable",
        other => other,
    };
    let pointwise = match family().pointwise() {
        Some(k) => k.name(),
        None => "tract",
    };
    format!(
        "family={} depthwise={depthwise} pointwise={pointwise}",
        family().name()
    )
}

/// Names the NHWC depthwise kernel tract will run here (the first call
/// logs it). Calling into `x86_depthwise` is also what keeps its kernels,
/// registered with tract through `inventory`, in the binary.
pub fn depthwise_kernel() -> &'static str {
    static KERNEL: OnceLock<&'static str> = OnceLock::new();
    KERNEL.get_or_init(|| {
        // The family edits what tract sees of the machine: first.
        let _ = init();
        let name = x86_depthwise::ensure_linked().unwrap_or("none");
        log::debug!("depthwise kernel: {name}");
        name
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_others_are_refused() {
        for f in [
            Family::Avx512,
            Family::Avx2,
            Family::Portable,
            Family::Tract,
        ] {
            assert_eq!(Family::parse(f.name()), Ok(f));
        }
        assert_eq!(
            Family::parse("sse9"),
            Err(KernelsError::Unknown("sse9".into()))
        );
        // Portable and tract run anywhere.
        assert_eq!(Family::Portable.check(), Ok(()));
        assert_eq!(Family::Tract.check(), Ok(()));
    }
}
