//! A `[[model]]` section: one classifier, its graph, labels, input and
//! how its window is cropped; the two shipped ones as the defaults.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// One classifier. Nothing about the shipped models is special: a third
/// graph, or one from TensorFlow's `retrain.py` (input `Mul`, output
/// `final_result`), is served by adding a section like this.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ModelConfig {
    /// Name used in requests (`models=theme`) and responses.
    pub name: String,
    /// Frozen GraphDef (`.pb`).
    pub graph: PathBuf,
    /// One label a line; line i names output index i.
    pub labels: PathBuf,
    /// Name of the graph's input node (a float `[1, height, width, 3]`).
    pub input: String,
    /// Name of the node whose output holds the class scores.
    pub output: String,
    /// Which part of the image the model sees around the point; by
    /// default the whole image (`fraction:1.0`), as most classifiers are
    /// trained on whole images.
    #[serde(default = "default_crop")]
    pub crop: Crop,
    /// Input width in pixels; the crop is resized to it.
    pub input_width: u32,
    /// Input height in pixels.
    pub input_height: u32,
    /// Each channel value v in 0..=255 is fed as (v - input-mean) / input-std.
    pub input_mean: f32,
    pub input_std: f32,
    /// Channel order the graph expects.
    #[serde(default)]
    pub channels: ChannelOrder,
    /// Axis order of the graph's input: `nhwc` (TensorFlow's) or `nchw`
    /// (PyTorch's, in ONNX exports).
    #[serde(default)]
    pub layout: Layout,
    /// Apply a softmax to the output (for graphs that end in logits).
    #[serde(default)]
    pub softmax: bool,
    /// Threads that run this model; each runs one inference at a time.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Requests that may wait for a worker; past that, 503 `overloaded`.
    #[serde(default = "default_queue")]
    pub queue: usize,
    /// Threads one inference of this model may use when it is the model's
    /// only work (its matrix products and depthwise convolutions are split
    /// across them). When other inferences of the model run or wait, each
    /// runs on its worker's thread alone, so a loaded model never runs more
    /// threads than it has workers.
    #[serde(default = "default_threads")]
    pub threads: usize,
}

fn default_crop() -> Crop {
    Crop::Fraction(1.0)
}

fn default_threads() -> usize {
    1
}

fn default_workers() -> usize {
    1
}

fn default_queue() -> usize {
    16
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    #[default]
    Rgb,
    Bgr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Nhwc,
    Nchw,
}

/// The window a model sees, written `fraction:0.8` (that share of the image's
/// width and height, centred on the point and shifted to stay inside) or
/// `pixels:9` (a 9x9 square around the point, clamped at the borders).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Crop {
    Fraction(f32),
    Pixels(u32),
}

impl fmt::Display for Crop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Crop::Fraction(v) => write!(f, "fraction:{v}"),
            Crop::Pixels(n) => write!(f, "pixels:{n}"),
        }
    }
}

impl std::str::FromStr for Crop {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("crop {s:?} is not \"fraction:F\" (0 < F <= 1) or \"pixels:N\" (N >= 1)");
        match s.split_once(':') {
            Some(("fraction", v)) => match v.trim().parse::<f32>() {
                Ok(f) if f > 0.0 && f <= 1.0 => Ok(Crop::Fraction(f)),
                _ => Err(bad()),
            },
            Some(("pixels", v)) => match v.trim().parse::<u32>() {
                Ok(n) if n >= 1 => Ok(Crop::Pixels(n)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

impl Serialize for Crop {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Crop {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The first `[[model]]` section of `text` that does not make a model, as
/// `line L: [[model]] #N "name": what is wrong` (the line of the key at
/// fault, or of the section's header for a missing key). `None` when the
/// sections are fine or the TOML itself is malformed.
pub(super) fn model_section_error(text: &str) -> Option<String> {
    let doc: toml::Table = toml::from_str(text).ok()?;
    let sections = doc.get("model")?.as_array()?;
    let lines: Vec<&str> = text.lines().collect();
    let headers: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("[[model]]"))
        .map(|(i, _)| i)
        .collect();
    for (n, section) in sections.iter().enumerate() {
        let Err(e) = section.clone().try_into::<ModelConfig>() else {
            continue;
        };
        let message = e.message().trim_end().to_string();
        let key_named = |m: &str| -> Option<String> {
            let start = m.find('`')? + 1;
            let len = m[start..].find('`')?;
            Some(m[start..start + len].to_string())
        };
        let (what, key) = match message.strip_prefix("missing field ") {
            Some(rest) => {
                let key = rest.trim_matches('`').to_string();
                (format!("missing key {key}"), None)
            }
            None => (message.clone(), key_named(&message)),
        };
        let header = headers.get(n).copied();
        let end = headers.get(n + 1).copied().unwrap_or(lines.len());
        // A key that is in the section but wrong: its own line (for a
        // wrong value, the key whose value the message quotes); a missing
        // key: the section's header.
        let quoted = |k: &str| {
            section
                .get(k)
                .is_some_and(|v| message.contains(&v.to_string()))
        };
        let suspect = key.or_else(|| {
            section
                .as_table()?
                .keys()
                .find(|k| quoted(k) && !what.starts_with("missing"))
                .cloned()
        });
        let key_line = header.zip(suspect).and_then(|(h, k)| {
            (h + 1..end).find(|&i| {
                let l = lines[i].trim_start();
                l.strip_prefix(k.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
        });
        let line = key_line.or(header).map(|i| i + 1);
        let name = section
            .get("name")
            .and_then(|v| v.as_str())
            .map(|v| format!(" {v:?}"))
            .unwrap_or_default();
        let place = line.map(|l| format!("line {l}: ")).unwrap_or_default();
        return Some(format!("{place}[[model]] #{}{name}: {what}", n + 1));
    }
    None
}

/// The two shipped classifiers, relative to the current folder so that
/// `cargo run -- serve` works from a checkout.
pub(super) fn default_models() -> Vec<ModelConfig> {
    vec![
        ModelConfig {
            name: "color".into(),
            graph: "models/colorClassifier.pb".into(),
            labels: "labels/colors.txt".into(),
            input: "input".into(),
            output: "colors".into(),
            crop: Crop::Pixels(9),
            input_width: 9,
            input_height: 9,
            input_mean: 0.0,
            input_std: 255.0,
            channels: ChannelOrder::Rgb,
            layout: Layout::Nhwc,
            softmax: false,
            workers: 1,
            queue: 64,
            threads: 1,
        },
        ModelConfig {
            name: "theme".into(),
            graph: "models/themeClassifier.pb".into(),
            labels: "labels/themes.txt".into(),
            input: "input".into(),
            output: "themes".into(),
            crop: Crop::Fraction(0.8),
            input_width: 224,
            input_height: 224,
            input_mean: 127.0,
            input_std: 128.0,
            channels: ChannelOrder::Rgb,
            layout: Layout::Nhwc,
            softmax: false,
            workers: 2,
            queue: 16,
            threads: 2,
        },
    ]
}
