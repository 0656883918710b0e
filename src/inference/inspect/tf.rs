//! `inspect` of a frozen TensorFlow graph: its placeholders, the node to
//! feed (the float placeholder, or the end of a `retrain.py` graph's own
//! decoding), the likely outputs, the unsupported ops of the part served,
//! and the report with its `[[model]]` section.

use super::{shape_text, write_labels, write_ops, write_section_head, write_unsupported};
use crate::inference::tf_import::{self, node_name, UnsupportedOp};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::path::Path;
use tract_tensorflow::tfpb::tensorflow::{GraphDef, NodeDef};
use tract_tensorflow::tract_hir::internal::*;

/// What `inspect` learnt of one graph.
#[derive(Debug)]
pub struct Inspection {
    pub inputs: Vec<Placeholder>,
    /// The node a `[[model]]` section should name as its input.
    pub feed: Feed,
    /// Softmax nodes and sinks, the most likely output first.
    pub outputs: Vec<Candidate>,
    pub ops: BTreeMap<String, usize>,
    /// Ops no one translates, in the part served from `feed` to the first
    /// output.
    pub unsupported: Vec<UnsupportedOp>,
    /// Classes, when the output's size could be worked out.
    pub classes: Option<usize>,
}

#[derive(Debug)]
pub struct Placeholder {
    pub name: String,
    pub dtype: String,
    /// -1 for an unknown dimension; `None` for an unknown rank.
    pub shape: Option<Vec<i64>>,
}

#[derive(Debug)]
pub struct Feed {
    pub name: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub mean: f32,
    pub std: f32,
    /// Where the mean and std come from.
    pub why: String,
}

#[derive(Debug)]
pub struct Candidate {
    pub name: String,
    pub op: String,
}

/// Ops that turn an encoded image into the float tensor a `retrain.py`
/// graph's tower reads.
const DECODING: &[&str] = &[
    "DecodeJpeg",
    "DecodePng",
    "DecodeImage",
    "DecodeBmp",
    "DecodeGif",
    "Cast",
    "ExpandDims",
    "ResizeBilinear",
    "ResizeBicubic",
    "ResizeNearestNeighbor",
    "Sub",
    "Mul",
    "RealDiv",
];

/// What `graph` takes and gives, read without running it.
pub fn inspect(graph: &GraphDef) -> Inspection {
    let by_name: HashMap<&str, &NodeDef> =
        graph.node.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut consumers: HashMap<&str, Vec<&NodeDef>> = HashMap::new();
    for node in &graph.node {
        for input in node.input.iter().filter(|i| !i.starts_with('^')) {
            consumers.entry(node_name(input)).or_default().push(node);
        }
    }
    let mut ops = BTreeMap::new();
    for node in &graph.node {
        *ops.entry(node.op.clone()).or_insert(0) += 1;
    }
    let inputs: Vec<Placeholder> = graph
        .node
        .iter()
        .filter(|n| n.op == "Placeholder" || n.op == "PlaceholderWithDefault")
        .filter(|n| n.op == "Placeholder" || consumers.contains_key(n.name.as_str()))
        .map(|n| Placeholder {
            name: n.name.clone(),
            dtype: n
                .get_attr_opt_datum_type("dtype")
                .ok()
                .flatten()
                .map(|d| format!("{d:?}"))
                .unwrap_or_else(|| "string".into()),
            shape: n
                .get_attr_opt_shape("shape")
                .ok()
                .flatten()
                .map(|s| s.iter().map(|d| *d as i64).collect()),
        })
        .collect();
    let feed = find_feed(graph, &inputs, &by_name, &consumers);
    let outputs = find_outputs(graph, &consumers);
    let (unsupported, classes) = match outputs.first() {
        Some(out) => served_part(graph, &feed, out),
        None => (Vec::new(), None),
    };
    Inspection {
        inputs,
        feed,
        outputs,
        ops,
        unsupported,
        classes,
    }
}

/// Whether `node` declares its `dtype` float.
fn is_float(node: &NodeDef) -> bool {
    matches!(
        node.get_attr_opt_datum_type("dtype").ok().flatten(),
        Some(DatumType::F32)
    )
}

/// The value of the one-value constant `input` names, as `f32`.
fn scalar_of(by_name: &HashMap<&str, &NodeDef>, input: &str) -> Option<f32> {
    let node = by_name.get(node_name(input))?;
    if node.op != "Const" {
        return None;
    }
    let t = node.get_attr_tensor("value").ok()?;
    if t.len() != 1 {
        return None;
    }
    t.cast_to_scalar::<f32>().ok()
}

/// The node a `[[model]]` section should feed: the float placeholder, or
/// else the end of a `retrain.py` graph's own decoding.
fn find_feed(
    graph: &GraphDef,
    inputs: &[Placeholder],
    by_name: &HashMap<&str, &NodeDef>,
    consumers: &HashMap<&str, Vec<&NodeDef>>,
) -> Feed {
    let image = graph
        .node
        .iter()
        .find(|n| n.op == "Placeholder" && is_float(n));
    match image {
        Some(p) => float_feed(p, inputs, by_name, consumers),
        None => decoded_feed(graph, by_name, consumers),
    }
}

/// The float placeholder `p` as the feed: its size from its shape, its
/// normalization 0..255 if the graph rescales it, else the usual guess.
fn float_feed(
    p: &NodeDef,
    inputs: &[Placeholder],
    by_name: &HashMap<&str, &NodeDef>,
    consumers: &HashMap<&str, Vec<&NodeDef>>,
) -> Feed {
    let shape = inputs
        .iter()
        .find(|i| i.name == p.name)
        .and_then(|i| i.shape.clone())
        .unwrap_or_default();
    let dim = |i: usize| shape.get(i).copied().filter(|d| *d > 0);
    let (mean, std, why) = if rescales(p, by_name, consumers) {
        (
            0.0,
            1.0,
            "the graph scales its input itself: it takes 0..255".into(),
        )
    } else {
        (
            127.5,
            127.5,
            "a guess (-1..1, as most Keras applications): use the normalization the \
             model was trained with (0..1: mean 0, std 255)"
                .into(),
        )
    };
    Feed {
        name: p.name.clone(),
        width: dim(2),
        height: dim(1),
        mean,
        std,
        why,
    }
}

/// Whether `p` goes straight into a `Mul`, `RealDiv` or `Sub` by a
/// constant: Keras' Rescaling / Normalization in the graph.
fn rescales(
    p: &NodeDef,
    by_name: &HashMap<&str, &NodeDef>,
    consumers: &HashMap<&str, Vec<&NodeDef>>,
) -> bool {
    consumers.get(p.name.as_str()).is_some_and(|c| {
        c.iter().any(|n| {
            matches!(n.op.as_str(), "Mul" | "RealDiv" | "Sub")
                && n.input.iter().any(|i| scalar_of(by_name, i).is_some())
        })
    })
}

/// A `retrain.py` graph's feed: the last op of the decoding chain from the
/// bytes' placeholder, with the resize and normalization read on the way.
fn decoded_feed(
    graph: &GraphDef,
    by_name: &HashMap<&str, &NodeDef>,
    consumers: &HashMap<&str, Vec<&NodeDef>>,
) -> Feed {
    let start = graph.node.iter().find(|n| n.op == "Placeholder");
    let mut feed = Feed {
        name: start.map(|n| n.name.clone()).unwrap_or_default(),
        width: None,
        height: None,
        mean: 0.0,
        std: 1.0,
        why: "no float placeholder: name the node that holds the image tensor".into(),
    };
    let Some(start) = start else { return feed };
    let chain = walk_decoding(start, by_name, consumers);
    feed.name = chain.last.name.clone();
    if let Some((h, w)) = chain.size {
        feed.height = Some(h);
        feed.width = Some(w);
    }
    if chain.last.name != start.name {
        feed.mean = chain.sub.unwrap_or(0.0);
        feed.std = chain.scale.map(|s| 1.0 / s).unwrap_or(1.0);
        feed.why = format!(
            "read from the graph's own decoding ({} -> ... -> {}): fed after it",
            start.name, chain.last.name
        );
    }
    feed
}

/// What the walk down a decoding chain read.
struct Decoding<'a> {
    /// The chain's last op (its start if nothing decodes it).
    last: &'a NodeDef,
    /// (height, width) of the last resize whose size could be read.
    size: Option<(i64, i64)>,
    /// The constant the last `Sub` subtracts.
    sub: Option<f32>,
    /// The constant the last `Mul` multiplies by (1 / a `RealDiv`'s).
    scale: Option<f32>,
}

/// Follows the decoding ops that consume `start`, then each other, to the
/// last of them, reading the resize, `Sub` and `Mul`/`RealDiv` passed.
fn walk_decoding<'a>(
    start: &'a NodeDef,
    by_name: &HashMap<&str, &NodeDef>,
    consumers: &HashMap<&str, Vec<&'a NodeDef>>,
) -> Decoding<'a> {
    let mut chain = Decoding {
        last: start,
        size: None,
        sub: None,
        scale: None,
    };
    while let Some(next) = next_decoding(chain.last, consumers) {
        let constant = || next.input.iter().find_map(|i| scalar_of(by_name, i));
        match next.op.as_str() {
            "ResizeBilinear" | "ResizeBicubic" | "ResizeNearestNeighbor" => {
                if let Some(size) = resize_size(next, by_name) {
                    chain.size = Some(size);
                }
            }
            "Sub" => chain.sub = constant(),
            "Mul" => chain.scale = constant(),
            "RealDiv" => chain.scale = constant().map(|d| 1.0 / d),
            _ => {}
        }
        chain.last = next;
    }
    chain
}

/// The first consumer of `node` that is a decoding op.
fn next_decoding<'a>(
    node: &NodeDef,
    consumers: &HashMap<&str, Vec<&'a NodeDef>>,
) -> Option<&'a NodeDef> {
    consumers.get(node.name.as_str()).and_then(|c| {
        c.iter()
            .find(|n| DECODING.contains(&n.op.as_str()))
            .copied()
    })
}

/// The (height, width) held by the constant a resize node sizes to.
fn resize_size(resize: &NodeDef, by_name: &HashMap<&str, &NodeDef>) -> Option<(i64, i64)> {
    let size = by_name.get(node_name(resize.input.get(1)?))?;
    let value = size.get_attr_tensor("value").ok()?;
    let value = value.cast_to::<i64>().ok()?;
    let hw: Vec<i64> = value
        .to_plain_array_view::<i64>()
        .map(|v| v.iter().copied().collect())
        .unwrap_or_default();
    match hw[..] {
        [h, w] => Some((h, w)),
        _ => None,
    }
}

/// Softmax nodes first (the last of a chain), then the sinks.
fn find_outputs(graph: &GraphDef, consumers: &HashMap<&str, Vec<&NodeDef>>) -> Vec<Candidate> {
    let ignored = [
        "Const",
        "NoOp",
        "Placeholder",
        "Assert",
        "SaveV2",
        "RestoreV2",
    ];
    let mut found: Vec<Candidate> = Vec::new();
    let sink =
        |n: &NodeDef| !consumers.contains_key(n.name.as_str()) && !ignored.contains(&n.op.as_str());
    // A softmax that a sink reads only through identities counts first.
    for node in graph.node.iter().filter(|n| n.op == "Softmax") {
        found.push(Candidate {
            name: node.name.clone(),
            op: node.op.clone(),
        });
    }
    found.sort_by_key(|c| !sink(graph.node.iter().find(|n| n.name == c.name).unwrap()));
    for node in graph.node.iter().filter(|n| sink(n) && n.op != "Softmax") {
        found.push(Candidate {
            name: node.name.clone(),
            op: node.op.clone(),
        });
    }
    found
}

/// The unsupported ops of the part served, and the number of classes if
/// the graph loads far enough to tell.
fn served_part(
    graph: &GraphDef,
    feed: &Feed,
    output: &Candidate,
) -> (Vec<UnsupportedOp>, Option<usize>) {
    let tf = tf_import::framework();
    let mut g = graph.clone();
    match tf_import::prepare(&mut g, &tf, &feed.name, &output.name) {
        Ok(()) => {}
        Err(tf_import::ImportError::Unsupported(ops)) => return (ops, None),
        Err(_) => return (Vec::new(), None),
    }
    let classes = (|| -> TractResult<usize> {
        let mut model = tf.model_for_proto_model(&g)?;
        model.set_input_names([feed.name.as_str()])?;
        let (h, w) = (
            feed.height.unwrap_or(224) as usize,
            feed.width.unwrap_or(224) as usize,
        );
        model.set_input_fact(0, f32::fact([1, h, w, 3]).into())?;
        model.select_outputs_by_name([output.name.as_str()])?;
        let typed = model.into_typed()?;
        let fact = typed.output_fact(0)?;
        Ok(fact
            .shape
            .iter()
            .last()
            .map(|d| d.to_usize())
            .transpose()?
            .unwrap_or(1))
    })()
    .ok();
    (Vec::new(), classes)
}

/// The report `predictd inspect` prints.
pub fn report(path: &Path, graph: &GraphDef) -> String {
    let found = inspect(graph);
    let mut out = String::new();
    write_findings(&mut out, path, graph, &found);
    write_section(&mut out, path, &found);
    out
}

/// The report's comments: the graph's inputs, likely outputs and ops, and
/// those of the part served that predictd cannot run.
fn write_findings(out: &mut String, path: &Path, graph: &GraphDef, found: &Inspection) {
    let _ = writeln!(out, "# {}: {} nodes", path.display(), graph.node.len());
    let _ = writeln!(out, "# inputs (placeholders):");
    for p in &found.inputs {
        let shape = match &p.shape {
            Some(s) => shape_text(s),
            None => "unknown".into(),
        };
        let _ = writeln!(out, "#   {} {} {}", p.name, p.dtype, shape);
    }
    let _ = writeln!(out, "# likely outputs:");
    for c in found.outputs.iter().take(5) {
        let _ = writeln!(out, "#   {} ({})", c.name, c.op);
    }
    write_ops(out, found.ops.iter().map(|(op, n)| (op.as_str(), *n)));
    write_unsupported(
        out,
        &found.unsupported,
        "graph",
        "every op on the way from the input to the output is supported",
    );
}

/// The `[[model]]` section serving the graph from its feed to its likeliest
/// output.
fn write_section(out: &mut String, path: &Path, found: &Inspection) {
    let output = found.outputs.first();
    let f = &found.feed;
    write_section_head(out, path, "model");
    let labels = match found.classes {
        Some(n) => format!("one label a line, {n} lines (the output has {n} classes)"),
        None => "one label a line, one per output class".into(),
    };
    write_labels(out, path, &labels);
    let _ = writeln!(out, "input = {:?}", f.name);
    match output {
        Some(c) => {
            let _ = writeln!(out, "output = {:?}", c.name);
        }
        None => {
            let _ = writeln!(
                out,
                "# no output found: name the node with the class scores"
            );
            let _ = writeln!(out, "output = \"\"");
        }
    }
    let _ = writeln!(out, "crop = \"fraction:1.0\"");
    let size = |v: Option<i64>, what: &str| match v {
        Some(v) => format!("{v}"),
        None => format!("224  # the graph does not fix its {what}: use the size it was trained at"),
    };
    let _ = writeln!(out, "input-width = {}", size(f.width, "width"));
    let _ = writeln!(out, "input-height = {}", size(f.height, "height"));
    let _ = writeln!(out, "# {}", f.why);
    let _ = writeln!(out, "input-mean = {:?}", f.mean);
    let _ = writeln!(out, "input-std = {:?}", f.std);
    if output.is_some_and(|c| c.op != "Softmax") {
        let _ = writeln!(out, "# the output is not a softmax: predictd applies one");
        let _ = writeln!(out, "softmax = true");
    }
}
