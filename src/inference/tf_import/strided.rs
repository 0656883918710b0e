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
    let mask = |k: &str| node.get_attr_opt_int::<i64>(k).ok().flatten().unwrap_or(0);
    let (new_axis, ellipsis) = (mask("new_axis_mask"), mask("ellipsis_mask"));
    if new_axis == 0 && ellipsis == 0 {
        return Ok(None);
    }
    if node.input.len() != 4 {
        return Err("StridedSlice without begin, end and strides".into());
    }
    let vector = |i: usize| -> Result<Vec<i64>, String> {
        constants
            .ints(&node.input[i])
            .ok_or_else(|| "begin, end and strides must be constants".to_string())
    };
    let (begin, end, strides) = (vector(1)?, vector(2)?, vector(3)?);
    let n = begin.len();
    if ellipsis != 0 && ellipsis != 1 << (n - 1) {
        return Err("an ellipsis before the last index is not supported".into());
    }
    let (mut b, mut e, mut s) = (Vec::new(), Vec::new(), Vec::new());
    let (mut begin_mask, mut end_mask, mut shrink) = (0i64, 0i64, 0i64);
    let mut new_dims = Vec::new();
    let mut out_axis = 0i64;
    for j in 0..n {
        let bit = 1i64 << j;
        if ellipsis & bit != 0 {
            continue;
        }
        if new_axis & bit != 0 {
            new_dims.push(out_axis);
            out_axis += 1;
            continue;
        }
        let k = b.len() as i64;
        b.push(begin[j]);
        e.push(end[j]);
        s.push(strides[j]);
        if mask("begin_mask") & bit != 0 {
            begin_mask |= 1 << k;
        }
        if mask("end_mask") & bit != 0 {
            end_mask |= 1 << k;
        }
        if mask("shrink_axis_mask") & bit != 0 {
            shrink |= 1 << k;
        } else {
            out_axis += 1;
        }
    }
    let name = node.name.clone();
    let sliced = format!("{name}/predictd_slice");
    let mut added = Vec::new();
    for (i, values) in [b, e, s].into_iter().enumerate() {
        let t = tract_tensorflow::tract_hir::prelude::tensor1(
            &values.iter().map(|v| *v as i32).collect::<Vec<_>>(),
        );
        let cname = format!("{sliced}/{}", ["begin", "end", "strides"][i]);
        added.push(const_node(&cname, &t).map_err(|e| e.to_string())?);
        node.input[i + 1] = cname;
    }
    node.name = sliced.clone();
    node.attr
        .insert("begin_mask".into(), AttrValue::from(begin_mask));
    node.attr
        .insert("end_mask".into(), AttrValue::from(end_mask));
    node.attr
        .insert("shrink_axis_mask".into(), AttrValue::from(shrink));
    node.attr
        .insert("new_axis_mask".into(), AttrValue::from(0i64));
    node.attr
        .insert("ellipsis_mask".into(), AttrValue::from(0i64));
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
            name.clone()
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
    if new_dims.is_empty() {
        // Only a trailing ellipsis: the slice keeps its name.
        node.name = name;
    }
    Ok(Some(added))
}
