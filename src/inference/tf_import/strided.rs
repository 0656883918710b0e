//! `StridedSlice`'s new axes (`x[:, tf.newaxis]`) as `ExpandDims`.

use tract_tensorflow::tfpb::tensorflow::{AttrValue, DataType, NodeDef};

use super::constants::{const_node, Constants};

/// A `StridedSlice` with `new_axis_mask` (`x[:, tf.newaxis]`) is rewritten
/// as the same slice without the new axes, followed by one `ExpandDims`
/// per new axis; the last takes the node's name. An ellipsis is allowed
/// only as the last index (where it means "the rest, whole").
pub(super) fn strided_new_axes(
    node: &mut NodeDef,
    constants: &Constants,
) -> Result<Option<Vec<NodeDef>>, String> {
    let (new_axis, ellipsis) = (mask(node, "new_axis_mask"), mask(node, "ellipsis_mask"));
    if new_axis == 0 && ellipsis == 0 {
        return Ok(None);
    }
    let vectors = slice_vectors(node, constants)?;
    let n = vectors[0].len();
    if ellipsis != 0 && ellipsis != 1 << (n - 1) {
        return Err("an ellipsis before the last index is not supported".into());
    }
    let plain = PlainSlice::of(node, &vectors, new_axis, ellipsis);
    let name = node.name.clone();
    let sliced = format!("{name}/predictd_slice");
    let mut added = respell_slice(node, &plain, &sliced)?;
    added.extend(expand_dims(&name, sliced, &plain.new_dims)?);
    if plain.new_dims.is_empty() {
        // Only a trailing ellipsis: the slice keeps its name.
        node.name = name;
    }
    Ok(Some(added))
}

/// The mask attribute `k` of `node`, 0 when it has none.
fn mask(node: &NodeDef, k: &str) -> i64 {
    node.get_attr_opt_int::<i64>(k).ok().flatten().unwrap_or(0)
}

/// The slice's begin, end and strides, which must be constants.
fn slice_vectors(node: &NodeDef, constants: &Constants) -> Result<[Vec<i64>; 3], String> {
    if node.input.len() != 4 {
        return Err("StridedSlice without begin, end and strides".into());
    }
    let vector = |i: usize| -> Result<Vec<i64>, String> {
        constants
            .ints(&node.input[i])
            .ok_or_else(|| "begin, end and strides must be constants".to_string())
    };
    Ok([vector(1)?, vector(2)?, vector(3)?])
}

/// The slice without its new axes and ellipsis: the begin, end and stride
/// of each index left, the masks renumbered to those indices, and where
/// the new axes go in the output.
struct PlainSlice {
    begin: Vec<i64>,
    end: Vec<i64>,
    strides: Vec<i64>,
    begin_mask: i64,
    end_mask: i64,
    shrink: i64,
    /// The output axis of each new axis, in order.
    new_dims: Vec<i64>,
}

impl PlainSlice {
    /// The plain slice of `node`, whose begin, end and strides are
    /// `vectors`.
    fn of(node: &NodeDef, vectors: &[Vec<i64>; 3], new_axis: i64, ellipsis: i64) -> PlainSlice {
        let [begin, end, strides] = vectors;
        let mut plain = PlainSlice {
            begin: Vec::new(),
            end: Vec::new(),
            strides: Vec::new(),
            begin_mask: 0,
            end_mask: 0,
            shrink: 0,
            new_dims: Vec::new(),
        };
        let mut out_axis = 0i64;
        for j in 0..begin.len() {
            let bit = 1i64 << j;
            if ellipsis & bit != 0 {
                continue;
            }
            if new_axis & bit != 0 {
                plain.new_dims.push(out_axis);
                out_axis += 1;
                continue;
            }
            let k = plain.begin.len() as i64;
            plain.begin.push(begin[j]);
            plain.end.push(end[j]);
            plain.strides.push(strides[j]);
            if mask(node, "begin_mask") & bit != 0 {
                plain.begin_mask |= 1 << k;
            }
            if mask(node, "end_mask") & bit != 0 {
                plain.end_mask |= 1 << k;
            }
            if mask(node, "shrink_axis_mask") & bit != 0 {
                plain.shrink |= 1 << k;
            } else {
                out_axis += 1;
            }
        }
        plain
    }
}

/// Makes `node` the plain slice, named `sliced`; returns the int32
/// constants of its begin, end and strides.
fn respell_slice(
    node: &mut NodeDef,
    plain: &PlainSlice,
    sliced: &str,
) -> Result<Vec<NodeDef>, String> {
    let mut added = Vec::new();
    for (i, values) in [&plain.begin, &plain.end, &plain.strides]
        .into_iter()
        .enumerate()
    {
        let t = tract_tensorflow::tract_hir::prelude::tensor1(
            &values.iter().map(|v| *v as i32).collect::<Vec<_>>(),
        );
        let cname = format!("{sliced}/{}", ["begin", "end", "strides"][i]);
        added.push(const_node(&cname, &t).map_err(|e| e.to_string())?);
        node.input[i + 1] = cname;
    }
    node.name = sliced.to_string();
    node.attr
        .insert("begin_mask".into(), AttrValue::from(plain.begin_mask));
    node.attr
        .insert("end_mask".into(), AttrValue::from(plain.end_mask));
    node.attr
        .insert("shrink_axis_mask".into(), AttrValue::from(plain.shrink));
    node.attr
        .insert("new_axis_mask".into(), AttrValue::from(0i64));
    node.attr
        .insert("ellipsis_mask".into(), AttrValue::from(0i64));
    Ok(added)
}

/// One `ExpandDims` per new axis, each after its axis constant, the first
/// reading `sliced` and the last named `name`.
fn expand_dims(name: &str, sliced: String, new_dims: &[i64]) -> Result<Vec<NodeDef>, String> {
    let mut added = Vec::new();
    let mut from = sliced;
    for (k, dim) in new_dims.iter().enumerate() {
        let axis = format!("{name}/predictd_axis{k}");
        added.push(
            const_node(
                &axis,
                &tract_tensorflow::tract_hir::prelude::tensor0(*dim as i32),
            )
            .map_err(|e| e.to_string())?,
        );
        let out = if k + 1 == new_dims.len() {
            name.to_string()
        } else {
            format!("{name}/predictd_expand{k}")
        };
        let mut expand = NodeDef {
            name: out.clone(),
            op: "ExpandDims".into(),
            input: vec![from, axis],
            ..Default::default()
        };
        expand
            .attr
            .insert("T".into(), AttrValue::from(DataType::DtFloat));
        added.push(expand);
        from = out;
    }
    Ok(added)
}
