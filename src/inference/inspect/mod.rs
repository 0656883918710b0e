//! `predictd inspect GRAPH`: what a graph takes and gives, in the terms of
//! a `[[model]]` section, so that serving a new graph is: inspect, paste,
//! `check`.
//!
//! It reads the graph without running it: the inputs (placeholders, with
//! dtype and shape), the likely outputs (softmaxes and sinks), a histogram
//! of ops, every op predictd cannot run, and a `[[model]]` section. For a
//! `retrain.py` graph, whose placeholder is the JPEG's bytes, the input is
//! where the image becomes a float tensor (`Mul`), and its size and
//! normalization are read from the graph's own resize and `Sub`/`Mul`
//! constants.
//!
//! [`report_file`] reads the file and hands it to the reader of its
//! format: `tf` for a frozen TensorFlow `GraphDef`, `onnx` for ONNX. The
//! lines both write the same way (shapes, the op histogram, the ops
//! predictd cannot run, the head of the `[[model]]` section) are here.

mod onnx;
mod tf;

pub use tf::report;

use crate::inference::tf_import::UnsupportedOp;
use std::fmt::Write;
use std::path::Path;

/// `predictd inspect`'s report of the graph at `path`, `.pb` or `.onnx`.
pub fn report_file(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    // The section names the graph by its absolute path: it is pasted into
    // a config file that may live anywhere.
    let absolute = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let path = absolute.as_path();
    if crate::inference::onnx_import::is_onnx(path) {
        let proto =
            crate::inference::onnx_import::proto(&bytes).map_err(|e| format!("not ONNX: {e:#}"))?;
        return Ok(onnx::report(path, &proto));
    }
    let graph = tract_tensorflow::tensorflow()
        .read_frozen_model(&mut &bytes[..])
        .map_err(|e| format!("not a frozen TensorFlow GraphDef: {e:#}"))?;
    Ok(report(path, &graph))
}

/// A model name (letters, digits, `-`, `_`) made of a file's stem.
fn model_name(stem: &str) -> String {
    stem.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A shape as the report writes it: `[?, 224, 224, 3]`, `?` for -1.
fn shape_text(dims: &[i64]) -> String {
    format!("{dims:?}").replace("-1", "?")
}

/// The op histogram under `# ops:`, the most used op first.
fn write_ops<'a>(out: &mut String, ops: impl IntoIterator<Item = (&'a str, usize)>) {
    let _ = writeln!(out, "# ops:");
    let mut ops: Vec<_> = ops.into_iter().collect();
    ops.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    for (op, n) in ops {
        let _ = writeln!(out, "#   {n:6} {op}");
    }
}

/// The ops predictd cannot run, one a line under a heading saying `check`
/// refuses the `what` ("graph", "model"); `# {all_supported}` if none.
fn write_unsupported(out: &mut String, ops: &[UnsupportedOp], what: &str, all_supported: &str) {
    if ops.is_empty() {
        let _ = writeln!(out, "# {all_supported}");
        return;
    }
    let _ = writeln!(
        out,
        "# NOT SUPPORTED (predictd check will refuse the {what}):"
    );
    for u in ops {
        let _ = writeln!(
            out,
            "#   {} ({} node(s), first {:?})",
            u.op, u.count, u.first
        );
    }
}

/// The `[[model]]` section's first lines: its name, made of the file's
/// stem (`fallback` without one), and the graph's path.
fn write_section_head(out: &mut String, path: &Path, fallback: &str) {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| fallback.into());
    let _ = writeln!(out);
    let _ = writeln!(out, "[[model]]");
    let _ = writeln!(out, "name = {:?}", model_name(&stem));
    let _ = writeln!(out, "graph = {:?}", path.display().to_string());
}

/// The section's `labels` line (the graph's path, `.labels.txt`), under
/// `# {comment}` on the lines the file needs.
fn write_labels(out: &mut String, path: &Path, comment: &str) {
    let _ = writeln!(out, "# {comment}");
    let labels = path.with_extension("labels.txt");
    let _ = writeln!(out, "labels = {:?}", labels.display().to_string());
}
