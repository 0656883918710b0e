//! The graph cut at the configured input and pruned to what the output
//! needs, through the `IdentityN` nodes freezing leaves.

use std::collections::{HashMap, HashSet, VecDeque};
use tract_tensorflow::tfpb::tensorflow::{AttrValue, DataType, GraphDef};

use super::{node_name, slot_of};

/// The configured input becomes a float placeholder with no inputs, so
/// whatever fed it (`DecodeJpeg/contents` -> `DecodeJpeg` -> ... in a
/// `retrain.py` graph) is no longer needed.
pub(super) fn cut_at_input(graph: &mut GraphDef, input: &str) {
    let node = graph.node.iter_mut().find(|n| n.name == input).unwrap();
    if node.op == "Placeholder" {
        return;
    }
    node.op = "Placeholder".into();
    node.input.clear();
    node.attr.clear();
    node.attr
        .insert("dtype".into(), AttrValue::from(DataType::DtFloat));
}

/// `IdentityN` (what `tf.custom_gradient` leaves, as in Keras' swish)
/// passes input k through as output k: its consumers read input k.
pub(super) fn bypass_identity_n(graph: &mut GraphDef) {
    let passes: HashMap<String, Vec<String>> = graph
        .node
        .iter()
        .filter(|n| n.op == "IdentityN")
        .map(|n| {
            let data = n.input.iter().filter(|i| !i.starts_with('^'));
            (n.name.clone(), data.cloned().collect())
        })
        .collect();
    if passes.is_empty() {
        return;
    }
    for node in &mut graph.node {
        for input in &mut node.input {
            if input.starts_with('^') {
                continue;
            }
            // Through chains of IdentityN as well.
            for _ in 0..16 {
                match passes.get(node_name(input)) {
                    Some(from) => match from.get(slot_of(input)) {
                        Some(source) => *input = source.clone(),
                        None => break,
                    },
                    None => break,
                }
            }
        }
    }
}

/// Keeps the nodes `output` depends on through data inputs; control
/// inputs (`^node`, what freezing leaves of training) are dropped.
pub(super) fn prune(graph: &mut GraphDef, output: &str) {
    let index: HashMap<&str, usize> = graph
        .node
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let mut keep = HashSet::new();
    let mut todo = VecDeque::from([output]);
    while let Some(name) = todo.pop_front() {
        let Some(&i) = index.get(name) else { continue };
        if !keep.insert(i) {
            continue;
        }
        for input in graph.node[i].input.iter().filter(|i| !i.starts_with('^')) {
            todo.push_back(node_name(input));
        }
    }
    let mut i = 0;
    graph.node.retain(|_| {
        i += 1;
        keep.contains(&(i - 1))
    });
    for node in &mut graph.node {
        node.input.retain(|i| !i.starts_with('^'));
    }
}
