//! The graph's constants: read through identities for the passes, made
//! into nodes, and the empty all-zero ones TF 2.x writes filled.

use std::collections::HashMap;
use tract_tensorflow::tfpb::tensorflow::attr_value::Value;
use tract_tensorflow::tfpb::tensorflow::{AttrValue, DataType, GraphDef, NodeDef, TensorProto};
use tract_tensorflow::tract_hir::internal::*;

use super::node_name;

/// The graph's constants, read through identities (frozen variables are
/// `Const` -> `Identity`).
pub(super) struct Constants {
    values: HashMap<String, Tensor>,
    identities: HashMap<String, String>,
}

impl Constants {
    pub(super) fn of(graph: &GraphDef) -> Constants {
        let mut constants = Constants {
            values: HashMap::new(),
            identities: HashMap::new(),
        };
        constants.absorb(&graph.node);
        constants.refresh_identities(graph);
        constants
    }

    /// Decodes the constants among `nodes`.
    pub(super) fn absorb(&mut self, nodes: &[NodeDef]) {
        for n in nodes.iter().filter(|n| n.op == "Const") {
            if let Ok(t) = n.get_attr_tensor("value") {
                self.values.insert(n.name.clone(), t);
            }
        }
    }

    /// Re-reads which nodes are identities (passes turn ops into some).
    pub(super) fn refresh_identities(&mut self, graph: &GraphDef) {
        self.identities = graph
            .node
            .iter()
            .filter(|n| n.op == "Identity" && !n.input.is_empty())
            .map(|n| (n.name.clone(), n.input[0].clone()))
            .collect();
    }

    /// `t` as the constant node `name`, known to later passes.
    pub(super) fn node(&mut self, name: &str, t: Tensor) -> TractResult<NodeDef> {
        let node = const_node(name, &t)?;
        self.values.insert(name.to_string(), t);
        Ok(node)
    }

    pub(super) fn get(&self, input: &str) -> Option<&Tensor> {
        let mut name = node_name(input);
        for _ in 0..16 {
            if let Some(t) = self.values.get(name) {
                return Some(t);
            }
            name = node_name(self.identities.get(name)?);
        }
        None
    }

    /// A constant vector as i64s.
    pub(super) fn ints(&self, input: &str) -> Option<Vec<i64>> {
        let t = self.get(input)?.cast_to::<i64>().ok()?;
        Some(
            t.to_plain_array_view::<i64>()
                .ok()?
                .iter()
                .copied()
                .collect(),
        )
    }
}

/// A `NodeDef` holding `t` as a constant.
pub(super) fn const_node(name: &str, t: &Tensor) -> TractResult<NodeDef> {
    let proto = TensorProto::try_from(t)?;
    let dtype = DataType::try_from(t.datum_type())?;
    let mut node = NodeDef {
        name: name.into(),
        op: "Const".into(),
        ..Default::default()
    };
    node.attr.insert("dtype".into(), AttrValue::from(dtype));
    node.attr.insert("value".into(), AttrValue::from(proto));
    Ok(node)
}

/// TF 2.x writes all-zero constants (`tf.zeros`, slice begins) as a shape
/// with no values at all, which TensorFlow reads as zeros and tract refuses.
/// One explicit zero is read by tract as "repeat this value".
pub(super) fn fill_empty_constants(graph: &mut GraphDef) {
    for node in graph.node.iter_mut().filter(|n| n.op == "Const") {
        let Some(value) = node.attr.get_mut("value") else {
            continue;
        };
        let Some(Value::Tensor(t)) = value.value.as_mut() else {
            continue;
        };
        let elements: i64 = t
            .tensor_shape
            .as_ref()
            .map(|s| s.dim.iter().map(|d| d.size).product())
            .unwrap_or(1);
        if !t.tensor_content.is_empty() || elements == 0 {
            continue;
        }
        match DataType::try_from(t.dtype) {
            Ok(DataType::DtFloat) if t.float_val.is_empty() => t.float_val.push(0.0),
            Ok(DataType::DtDouble) if t.double_val.is_empty() => t.double_val.push(0.0),
            Ok(DataType::DtInt32) if t.int_val.is_empty() => t.int_val.push(0),
            Ok(DataType::DtInt64) if t.int64_val.is_empty() => t.int64_val.push(0),
            _ => {}
        }
    }
}
