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
//! model name made of a file's stem is theirs to share.

mod onnx;
mod tf;

pub use tf::{inspect, report, Candidate, Feed, Inspection, Placeholder};

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
