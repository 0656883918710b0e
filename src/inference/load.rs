//! Reading a model: labels and graph file, the graph fixed for tract
//! (`tf_import`, `onnx_import`), predictd's rewrites (`rewrite`), and the
//! optimized plan every worker of the model runs. Also the entry points of
//! tools that run a plan without workers.

use super::worker::{executor_for, run_on, run_plan};
use super::{ModelError, ModelInfo};
use crate::config::{Layout, ModelConfig};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tract_tensorflow::prelude::*;

/// A model's optimized plan, shared by its workers.
pub type Plan = Arc<TypedRunnableModel>;

/// The shape of the tensor a model is fed, in its layout.
pub(super) fn fed_shape(spec: &ModelConfig) -> [usize; 4] {
    let (h, w) = (spec.input_height as usize, spec.input_width as usize);
    match spec.layout {
        Layout::Nhwc => [1, h, w, 3],
        Layout::Nchw => [1, 3, h, w],
    }
}

/// Reads labels and graph, hashes the graph, fixes it for tract, sets the
/// input shape, optimizes: the plan every worker of this model runs.
pub(super) fn load_model(spec: &ModelConfig) -> Result<(Plan, ModelInfo, Vec<String>), ModelError> {
    let started = Instant::now();
    let text = std::fs::read_to_string(&spec.labels).map_err(|source| ModelError::ReadLabels {
        path: spec.labels.clone(),
        source,
    })?;
    let labels: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    let bytes = std::fs::read(&spec.graph).map_err(|source| ModelError::ReadGraph {
        path: spec.graph.clone(),
        source,
    })?;
    let version = format!("sha256:{:x}", Sha256::digest(&bytes));
    let fail = |reason: String| ModelError::Load {
        model: spec.name.clone(),
        path: spec.graph.clone(),
        reason,
    };
    if labels.is_empty() {
        return Err(fail(format!(
            "labels file {} is empty",
            spec.labels.display()
        )));
    }
    let graph_bytes = bytes.len() as u64;
    // The file's bytes go to build_plan, which drops them once parsed: a
    // reload runs beside the version in service and the requests, and each
    // copy of the weights alive at once adds to the daemon's peak.
    let plan = build_plan(bytes, spec).map_err(|e| fail(format!("{e:#}")))?;
    let load_ms = started.elapsed().as_secs_f64() * 1000.0;
    let info = ModelInfo {
        name: spec.name.clone(),
        graph: spec.graph.clone(),
        version: version.clone(),
        graph_bytes,
        labels: labels.len(),
        label_names: labels.clone(),
        input_shape: [1, spec.input_height as usize, spec.input_width as usize, 3],
        crop: spec.crop.to_string(),
        workers: spec.workers,
        queue: spec.queue,
        loaded_at: SystemTime::now(),
        load_ms,
    };
    log::info!(
        "model load: model={} file={} bytes={} hash={} ms={:.1}",
        spec.name,
        spec.graph.display(),
        graph_bytes,
        version,
        load_ms
    );
    Ok((plan, info, labels))
}

/// Builds the plan from the graph file's `bytes`. The weights exist in
/// several forms on the way (file, protobuf, tract's tensors); each earlier
/// form is dropped as soon as the next is made, so that at most two are
/// alive at once.
fn build_plan(bytes: Vec<u8>, spec: &ModelConfig) -> TractResult<Plan> {
    super::kernels::depthwise_kernel();
    let mut model = if crate::inference::onnx_import::is_onnx(&spec.graph) {
        crate::inference::onnx_import::model(&bytes, &spec.input, &spec.output)?
    } else {
        let tf = crate::inference::tf_import::framework();
        let mut graph = tf.read_frozen_model(&mut &bytes[..])?;
        drop(bytes);
        crate::inference::tf_import::prepare(&mut graph, &tf, &spec.input, &spec.output)?;
        let mut model = tf.model_for_proto_model(&graph)?;
        drop(graph);
        model.set_input_names([crate::inference::tf_import::node_name(&spec.input)])?;
        model.select_outputs_by_name([crate::inference::tf_import::node_name(&spec.output)])?;
        model
    };
    model.set_input_fact(0, f32::fact(fed_shape(spec)).into())?;
    let mut model = model.into_typed()?;
    let declutter = crate::inference::tf_import::declutter(&mut model)?;
    // predictd's rewrites and fused ops, unless the `tract` kernel family
    // asks for tract's plan as tract builds it.
    let (folded, fused, pointwise, dense) = if super::kernels::rewrites() {
        use crate::inference::rewrite::{dense, fold};
        (
            fold::fold_depthwise_channel_ops(&mut model)?,
            fold::fuse_depthwise_clip(&mut model)?,
            fold::fuse_pointwise(&mut model)?,
            dense::fuse_dense(&mut model)?,
        )
    } else {
        (0, 0, 0, 0)
    };
    log::debug!(
        "model {}: {folded} per-channel operations folded into depthwise convolutions, \
         {fused} clamps fused with theirs, {pointwise} 1x1 and {dense} dense convolutions \
         on predictd's kernel",
        spec.name
    );
    // Again after predictd's rewrites, as tract's into_optimized does.
    declutter.optimize(&mut model)?;
    model.optimize()?;
    let plan = model.into_runnable()?;
    Ok(plan)
}

/// The optimized plan predictd runs for `spec`, without workers: for tools
/// that look inside it (the profiler, tests of the graph rewrites).
pub fn optimized_plan(spec: &ModelConfig) -> Result<Plan, ModelError> {
    load_model(spec).map(|(plan, _, _)| plan)
}

/// Loads `spec`'s graph and runs it once on `input` (NHWC data), without
/// workers or preprocessing: for checking a graph against reference outputs.
pub fn run_raw(spec: &ModelConfig, input: &[f32]) -> Result<Vec<f32>, ModelError> {
    run_alone(spec, |run| run(input))
}

/// Like [`run_raw`], `runs` times after one warm-up run: the milliseconds
/// of each run.
pub fn run_raw_timed(
    spec: &ModelConfig,
    input: &[f32],
    runs: usize,
) -> Result<Vec<f64>, ModelError> {
    run_alone(spec, |run| {
        run(input)?;
        (0..runs)
            .map(|_| {
                let started = Instant::now();
                run(input).map(|_| started.elapsed().as_secs_f64() * 1000.0)
            })
            .collect()
    })
}

/// Loads `spec`'s plan and hands `body` a function that runs it on one
/// input, all on the model's executor.
fn run_alone<R: Send>(
    spec: &ModelConfig,
    body: impl FnOnce(&mut dyn FnMut(&[f32]) -> Result<Vec<f32>, ModelError>) -> Result<R, ModelError>
        + Send,
) -> Result<R, ModelError> {
    let (plan, _, labels) = load_model(spec)?;
    let mut state = plan.spawn().map_err(|e| ModelError::Inference {
        model: spec.name.clone(),
        reason: e.to_string(),
    })?;
    run_on(&executor_for(spec), || {
        body(&mut |input: &[f32]| run_plan(&mut state, spec, labels.len(), input.to_vec()))
    })
}
