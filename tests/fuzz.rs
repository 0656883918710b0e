//! The fuzz targets on a stable toolchain, as CI runs them: each target of
//! `predictd::fuzzing` (the bodies cargo-fuzz's targets call too) first
//! replays its saved inputs (`fuzz/seeds/<target>/` and the crashes found
//! so far, `fuzz/regressions/<target>/`), then runs for a bounded time on
//! inputs mutated from them (bit flips, interesting bytes and integers,
//! inserted, deleted, duplicated and spliced runs, truncation). Not
//! coverage-guided, as libFuzzer is (`fuzz/run.sh`, nightly); it needs
//! nothing but the test build.
//!
//! `PREDICTD_FUZZ_SECS` sets the seconds per target (default 30; CI 60);
//! `PREDICTD_FUZZ_SEED` replays a run. A panic saves its input under
//! `target/fuzz-crashes/<target>/` and fails the test naming it; the fix
//! then copies it to `fuzz/regressions/<target>/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// xorshift64*: small, seeded, good enough to choose mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const MAX_LEN: usize = 65_536;
const BYTES: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'\n', b'\r', b':', b'"', b'\\', b'-', b'/',
];
const INTEGERS: &[u32] = &[
    0,
    1,
    0xff,
    0x100,
    0x7fff,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0xffff_ffff,
];

/// One input: a saved one with 1 to 8 mutations stacked.
fn mutate(saved: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let mut data = saved[rng.below(saved.len())].clone();
    for _ in 0..1 + rng.below(8) {
        let len = data.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = BYTES[rng.below(BYTES.len())];
            }
            2 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next() as u8;
            }
            3 if len >= 4 => {
                // An integer where a header keeps its sizes and lengths.
                let v = INTEGERS[rng.below(INTEGERS.len())];
                let bytes = if rng.below(2) == 0 {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                let width = [1, 2, 4][rng.below(3)];
                let i = rng.below(len - width + 1);
                data[i..i + width].copy_from_slice(&bytes[4 - width..]);
            }
            4 if len < MAX_LEN => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let run: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                data.splice(i..i, run);
            }
            5 if len > 1 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                data.drain(i..i + n);
            }
            6 if len > 1 && len < MAX_LEN => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                let run = data[i..i + n].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, run);
            }
            7 => {
                // A run of another saved input over this one.
                let other = &saved[rng.below(saved.len())];
                if !other.is_empty() && len > 0 {
                    let from = rng.below(other.len());
                    let n = 1 + rng.below((other.len() - from).min(512));
                    let at = rng.below(len);
                    let end = (at + n).min(len);
                    data[at..end].copy_from_slice(&other[from..from + (end - at)]);
                }
            }
            _ if len > 0 => data.truncate(rng.below(len)),
            _ => data.push(rng.next() as u8),
        }
    }
    data.truncate(MAX_LEN);
    data
}

fn read_dir(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
    files.sort();
    files
        .iter()
        .filter(|p| p.is_file())
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Runs `target` on `input`; a panic saves the input and fails the test.
fn check(target: &str, f: fn(&[u8]), input: &[u8]) {
    if std::panic::catch_unwind(|| f(input)).is_err() {
        save_and_fail(target, input);
    }
}

fn save_and_fail(target: &str, input: &[u8]) -> ! {
    // The default hook again, so that this panic's message is printed.
    let _ = std::panic::take_hook();
    let dir = root().join("target/fuzz-crashes").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    let name: String = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        input.hash(&mut h);
        format!("{:016x}.bin", h.finish())
    };
    std::fs::write(dir.join(&name), input).unwrap();
    panic!(
        "{target} panicked on {} ({} bytes)",
        dir.join(name).display(),
        input.len()
    );
}

fn fuzz(target: &str, f: fn(&[u8])) {
    let secs: u64 = std::env::var("PREDICTD_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("PREDICTD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1;
    let mut saved = read_dir(&root().join("fuzz/seeds").join(target));
    assert!(!saved.is_empty(), "{target} has no seeds");
    saved.extend(read_dir(&root().join("fuzz/regressions").join(target)));
    for input in &saved {
        check(target, f, input);
    }
    // Panics are caught and reported by `check`: keep their messages out
    // of the run's output.
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut execs = 0u64;
    let mut slowest = Duration::ZERO;
    while started.elapsed() < Duration::from_secs(secs) {
        let input = mutate(&saved, &mut rng);
        let t = Instant::now();
        let outcome = std::panic::catch_unwind(|| f(&input));
        slowest = slowest.max(t.elapsed());
        if outcome.is_err() {
            save_and_fail(target, &input);
        }
        execs += 1;
    }
    let _ = std::panic::take_hook();
    eprintln!(
        "fuzz {target}: {} saved inputs replayed, {execs} mutated inputs in {secs} s \
         (seed {seed}, slowest {:.0} ms)",
        saved.len(),
        slowest.as_secs_f64() * 1e3
    );
    assert!(execs > 0, "{target} ran no input");
    assert!(
        slowest < Duration::from_secs(10),
        "{target}: one input took {slowest:?} (a hang?)"
    );
}

#[test]
fn image_header_survives_mutated_inputs() {
    fuzz("image_header", predictd::fuzzing::image_header);
}

#[test]
fn predict_request_survives_mutated_inputs() {
    fuzz("predict_request", predictd::fuzzing::predict_request);
}
