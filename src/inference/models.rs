//! The model registry: graphs loaded with tract, each served by its own
//! named worker threads behind a bounded queue.
//!
//! A [`Registry`] is built whole and never changed: a reload builds a new
//! one on the side and swaps it in (see `api::State`), and the old one goes
//! away when the last request holding it is answered. Each model's first
//! worker thread reads, fixes and optimizes the graph, so the graph is loaded
//! on the threads that run it (after the fork when daemonized); siblings
//! share the optimized plan. Jobs carry the decoded image and their own reply
//! channel: the worker crops, resizes and runs, so no pixel work and no
//! inference ever runs on the async runtime.

use crate::config::{Config, Layout, ModelConfig};
use crate::image::source::View;
use crate::image::Window;
use crate::inference::preprocess;
use image::RgbImage;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::oneshot;
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_tensorflow::prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The graph file could not be read.
    #[error("Cannot read graph {path}")]
    ReadGraph {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The labels file could not be read.
    #[error("Cannot read labels {path}")]
    ReadLabels {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// tract refused the graph (corrupt file, missing node, unsupported op).
    #[error("Model {model}: cannot load graph {path}: {reason}")]
    Load {
        model: String,
        path: PathBuf,
        reason: String,
    },
    /// The graph loaded but its answer to a test input is unusable.
    #[error("Model {model}: test inference failed: {reason}")]
    SelfTest { model: String, reason: String },
    /// Every worker is busy and the queue is full.
    #[error("Model {0} is overloaded; try again shortly")]
    Overloaded(String),
    /// The worker failed to run the graph on this input.
    #[error("Model {model}: inference failed: {reason}")]
    Inference { model: String, reason: String },
    /// The worker thread went away (only during shutdown).
    #[error("Model {0} is shutting down")]
    Gone(String),
}

type Plan = Arc<TypedRunnableModel>;

/// A pool of `threads` threads for one worker, or the worker thread alone.
///
/// Each worker has a pool of its own: tract's matrix products keep scratch
/// space per thread, so a pool shared by two workers can re-enter one
/// inference's thread with the other's (measured: a `RefCell` panic).
pub fn executor_for(spec: &ModelConfig) -> Executor {
    if spec.threads > 1 {
        Executor::multithread_with_name(spec.threads, &format!("predictd-{}-mt", spec.name))
    } else {
        Executor::SingleThread
    }
}

/// Runs `f` (an inference) on `executor`. A pool runs the whole inference
/// on one of its own threads, so that each operation's parallel parts are
/// shared with the pool's other threads by work stealing; handing each
/// operation to the pool from outside costs a wake-up per operation, which
/// measured slower than one thread on this graph.
pub fn run_on<R: Send>(executor: &Executor, f: impl FnOnce() -> R + Send) -> R {
    match executor {
        Executor::MultiThread(pool) => {
            pool.install(|| multithread_tract_scope(executor.clone(), f))
        }
        _ => f(),
    }
}

/// What a worker is asked to do.
struct Job {
    view: View,
    x: u32,
    y: u32,
    queued_at: Instant,
    reply: oneshot::Sender<Result<Inference, ModelError>>,
}

/// One model's answer for one image.
#[derive(Debug, Clone)]
pub struct Inference {
    /// Probabilities in label order.
    pub probabilities: Vec<f32>,
    /// The window the model saw.
    pub window: Window,
    /// Time spent waiting for a worker.
    pub queued: Duration,
    /// Crop, resize and scaling into the input tensor.
    pub preprocess: Duration,
    /// Crop, resize and inference.
    pub elapsed: Duration,
}

/// A loaded model, as `/v1/models` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub graph: PathBuf,
    /// `sha256:` and the hex digest of the graph file.
    pub version: String,
    pub graph_bytes: u64,
    pub labels: usize,
    /// The labels themselves, in output order (for pickers such as the page's).
    pub label_names: Vec<String>,
    pub input_shape: [usize; 4],
    pub crop: String,
    pub workers: usize,
    pub queue: usize,
    #[serde(serialize_with = "rfc3339")]
    pub loaded_at: SystemTime,
    pub load_ms: f64,
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

/// A model ready to take jobs.
pub struct Model {
    pub info: ModelInfo,
    pub spec: ModelConfig,
    /// Shared with the feedback records of predictions made with it.
    pub labels: Arc<Vec<String>>,
    jobs: crossbeam_channel::Sender<Job>,
}

impl Model {
    /// Queues an inference for the point `(x, y)`; fails at once with
    /// [`ModelError::Overloaded`] when the queue is full.
    pub fn submit(
        &self,
        view: View,
        x: u32,
        y: u32,
    ) -> Result<oneshot::Receiver<Result<Inference, ModelError>>, ModelError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            view,
            x,
            y,
            queued_at: Instant::now(),
            reply,
        };
        match self.jobs.try_send(job) {
            Ok(()) => Ok(rx),
            Err(crossbeam_channel::TrySendError::Full(_)) => {
                Err(ModelError::Overloaded(self.info.name.clone()))
            }
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => {
                Err(ModelError::Gone(self.info.name.clone()))
            }
        }
    }

    /// Runs one inference and waits for it.
    pub async fn infer(&self, view: View, x: u32, y: u32) -> Result<Inference, ModelError> {
        let rx = self.submit(view, x, y)?;
        rx.await
            .map_err(|_| ModelError::Gone(self.info.name.clone()))?
    }

    /// Jobs waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.jobs.len()
    }
}

/// Every configured model, loaded.
pub struct Registry {
    pub models: Vec<Arc<Model>>,
    pub loaded_at: SystemTime,
}

/// Registries built and not yet dropped: 1 in service, more only while
/// requests that started before a reload still hold the old one.
static REGISTRIES_ALIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Model worker threads running, of every registry alive.
static WORKERS_ALIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many model sets and worker threads exist now (for `/metrics`: an
/// old version that outlives its last request shows here).
pub fn alive() -> (usize, usize) {
    use std::sync::atomic::Ordering::Relaxed;
    (REGISTRIES_ALIVE.load(Relaxed), WORKERS_ALIVE.load(Relaxed))
}

impl Drop for Registry {
    fn drop(&mut self) {
        REGISTRIES_ALIVE.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Registry {
    /// Loads every model of `config` in parallel, each on its own worker
    /// threads, and checks each with a test inference. Fails with the first
    /// model's error; the threads of models already loaded then exit.
    pub fn load(config: &Config) -> Result<Registry, ModelError> {
        let pending: Vec<_> = config
            .models
            .iter()
            .map(|spec| start_model(spec.clone()))
            .collect();
        let mut models = Vec::with_capacity(pending.len());
        let mut first_error = None;
        for rx in pending {
            let outcome = rx.recv().unwrap_or_else(|_| {
                Err(ModelError::Load {
                    model: "?".into(),
                    path: PathBuf::new(),
                    reason: "worker thread died while loading".into(),
                })
            });
            match outcome {
                Ok(model) => models.push(Arc::new(model)),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        REGISTRIES_ALIVE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let registry = Registry {
            models,
            loaded_at: SystemTime::now(),
        };
        registry.self_test()?;
        Ok(registry)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Model>> {
        self.models.iter().find(|m| m.info.name == name)
    }

    /// Runs every model once on a mid-grey image and checks that it answers
    /// with one finite probability per label.
    fn self_test(&self) -> Result<(), ModelError> {
        let grey = View::whole(Arc::new(RgbImage::from_pixel(
            64,
            48,
            image::Rgb([128, 128, 128]),
        )));
        for m in &self.models {
            let rx = m.submit(grey.clone(), 32, 24)?;
            let inference = rx
                .blocking_recv()
                .map_err(|_| ModelError::Gone(m.info.name.clone()))?
                .map_err(|e| ModelError::SelfTest {
                    model: m.info.name.clone(),
                    reason: e.to_string(),
                })?;
            let p = &inference.probabilities;
            if p.iter().any(|v| !v.is_finite()) {
                return Err(ModelError::SelfTest {
                    model: m.info.name.clone(),
                    reason: "output holds NaN or infinite values".into(),
                });
            }
            let sum: f32 = p.iter().sum();
            if (sum - 1.0).abs() > 0.01 {
                return Err(ModelError::SelfTest {
                    model: m.info.name.clone(),
                    reason: format!(
                        "outputs sum to {sum:.4}, not 1: set `softmax = true` if the graph ends in logits"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Spawns the model's first worker, which loads the graph and then starts
/// its siblings. The returned channel yields the ready model or the reason
/// it could not load.
fn start_model(spec: ModelConfig) -> std::sync::mpsc::Receiver<Result<Model, ModelError>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let name = format!("predictd-{}-0", spec.name);
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded::<Job>(spec.queue);
        let loaded = load_model(&spec);
        let (plan, info, labels) = match loaded {
            Ok(v) => v,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for i in 1..spec.workers {
            let (plan, sibling_spec, rx) = (plan.clone(), spec.clone(), jobs_rx.clone());
            let labels_len = labels.len();
            let busy = busy.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("predictd-{}-{i}", spec.name))
                .spawn(move || work(plan, sibling_spec, labels_len, rx, busy));
            if let Err(e) = spawned {
                let _ = ready_tx.send(Err(ModelError::Load {
                    model: spec.name.clone(),
                    path: spec.graph.clone(),
                    reason: format!("cannot start worker thread: {e}"),
                }));
                return;
            }
        }
        let labels_len = labels.len();
        let model = Model {
            info,
            spec: spec.clone(),
            labels: Arc::new(labels),
            jobs: jobs_tx,
        };
        if ready_tx.send(Ok(model)).is_ok() {
            work(plan, spec, labels_len, jobs_rx, busy);
        }
    });
    if let Err(e) = spawned {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let _ = tx.send(Err(ModelError::Load {
            model: "?".into(),
            path: PathBuf::new(),
            reason: format!("cannot start worker thread: {e}"),
        }));
        return rx;
    }
    ready_rx
}

/// A worker's loop: one job at a time until the registry is dropped.
fn work(
    plan: Plan,
    spec: ModelConfig,
    labels: usize,
    jobs: crossbeam_channel::Receiver<Job>,
    busy: Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    struct Alive;
    impl Drop for Alive {
        fn drop(&mut self) {
            WORKERS_ALIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }
    WORKERS_ALIVE.fetch_add(1, Ordering::Relaxed);
    let _alive = Alive;
    // Both cores for one inference when it is the only work this model has;
    // one thread each when other jobs run or wait, so that a loaded model
    // never runs more threads than it has workers.
    let pool = executor_for(&spec);
    let mut state = match plan.spawn() {
        Ok(s) => s,
        Err(e) => {
            log::error!("model {}: cannot start a worker: {e}", spec.name);
            return;
        }
    };
    while let Ok(job) = jobs.recv() {
        if job.reply.is_closed() {
            continue; // the request timed out or its client left
        }
        let queued = job.queued_at.elapsed();
        let started = Instant::now();
        let (window, data) = preprocess::model_input(&job.view, &spec, job.x, job.y);
        let preprocess = started.elapsed();
        let alone = busy.fetch_add(1, Ordering::SeqCst) == 0 && jobs.is_empty();
        let executor = if alone {
            &pool
        } else {
            &Executor::SingleThread
        };
        let outcome = run_on(executor, || run_plan(&mut state, &spec, labels, data));
        busy.fetch_sub(1, Ordering::SeqCst);
        let outcome = outcome.map(|probabilities| Inference {
            probabilities,
            window,
            queued,
            preprocess,
            elapsed: started.elapsed(),
        });
        let _ = job.reply.send(outcome);
    }
}

fn run_plan(
    state: &mut TypedSimpleState,
    spec: &ModelConfig,
    labels: usize,
    data: Vec<f32>,
) -> Result<Vec<f32>, ModelError> {
    let fail = |reason: String| ModelError::Inference {
        model: spec.name.clone(),
        reason,
    };
    let (h, w) = (spec.input_height as usize, spec.input_width as usize);
    let input = match spec.layout {
        Layout::Nhwc => Tensor::from_shape(&fed_shape(spec), &data),
        Layout::Nchw => {
            let mut planar = vec![0f32; data.len()];
            for (i, px) in data.chunks_exact(3).enumerate() {
                for (c, v) in px.iter().enumerate() {
                    planar[c * h * w + i] = *v;
                }
            }
            Tensor::from_shape(&fed_shape(spec), &planar)
        }
    }
    .map_err(|e| fail(e.to_string()))?;
    let outputs = state
        .run(tvec!(input.into_tvalue()))
        .map_err(|e| fail(e.to_string()))?;
    let output = outputs
        .first()
        .ok_or_else(|| fail("the graph gave no output".into()))?;
    let scores = output
        .to_plain_array_view::<f32>()
        .map_err(|e| fail(e.to_string()))?;
    if scores.len() != labels {
        return Err(fail(format!(
            "{} outputs for {labels} labels",
            scores.len()
        )));
    }
    let mut p: Vec<f32> = scores.iter().copied().collect();
    if spec.softmax {
        softmax(&mut p);
    }
    Ok(p)
}

/// The shape of the tensor a model is fed, in its layout.
fn fed_shape(spec: &ModelConfig) -> [usize; 4] {
    let (h, w) = (spec.input_height as usize, spec.input_width as usize);
    match spec.layout {
        Layout::Nhwc => [1, h, w, 3],
        Layout::Nchw => [1, 3, h, w],
    }
}

fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    v.iter_mut().for_each(|x| *x /= sum);
}

use tract_tensorflow::tract_core::model::TypedSimpleState;

/// Reads labels and graph, hashes the graph, fixes it for tract, sets the
/// input shape, optimizes: the plan every worker of this model runs.
fn load_model(spec: &ModelConfig) -> Result<(Plan, ModelInfo, Vec<String>), ModelError> {
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
    depthwise_kernel();
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
    let folded = crate::inference::rewrite::fold::fold_depthwise_channel_ops(&mut model)?;
    let fused = crate::inference::rewrite::fold::fuse_depthwise_clip(&mut model)?;
    let pointwise = crate::inference::rewrite::fold::fuse_pointwise(&mut model)?;
    log::debug!(
        "model {}: {folded} per-channel operations folded into depthwise convolutions, \
         {fused} clamps fused with theirs, {pointwise} 1x1 convolutions on the AVX-512F kernel",
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

/// The convolution kernels this machine runs, for the start-up log,
/// `predictd check` and `benches/compare.sh`'s header: the depthwise one
/// (`avx512f`, `avx2_fma` or `portable`) and the 1x1 one (predictd's
/// `avx512f`, or tract's own matrix products).
pub fn kernels() -> String {
    let pointwise = if x86_pointwise::Pointwise::fast() {
        "avx512f"
    } else {
        "tract"
    };
    let depthwise = match depthwise_kernel() {
        x86_depthwise::AVX512F => "avx512f",
        x86_depthwise::AVX2_FMA => "avx2_fma",
        x86_depthwise::PORTABLE => "portable",
        other => other,
    };
    format!("depthwise={depthwise} pointwise={pointwise}")
}

/// Names the NHWC depthwise kernel tract will run here (the first call
/// logs it). Calling into `x86_depthwise` is also what keeps its kernels,
/// registered with tract through `inventory`, in the binary.
pub fn depthwise_kernel() -> &'static str {
    static KERNEL: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    KERNEL.get_or_init(|| {
        let name = x86_depthwise::ensure_linked().unwrap_or("none");
        log::debug!("depthwise kernel: {name}");
        name
    })
}

/// Loads `spec`'s graph and runs it once on `input` (NHWC data), without
/// workers or preprocessing: for checking a graph against reference outputs.
pub fn run_raw(spec: &ModelConfig, input: &[f32]) -> Result<Vec<f32>, ModelError> {
    let (plan, _, labels) = load_model(spec)?;
    let mut state = plan.spawn().map_err(|e| ModelError::Inference {
        model: spec.name.clone(),
        reason: e.to_string(),
    })?;
    run_on(&executor_for(spec), || {
        run_plan(&mut state, spec, labels.len(), input.to_vec())
    })
}

/// Like [`run_raw`], `runs` times after one warm-up run: the milliseconds
/// of each run.
pub fn run_raw_timed(
    spec: &ModelConfig,
    input: &[f32],
    runs: usize,
) -> Result<Vec<f64>, ModelError> {
    let (plan, _, labels) = load_model(spec)?;
    let mut state = plan.spawn().map_err(|e| ModelError::Inference {
        model: spec.name.clone(),
        reason: e.to_string(),
    })?;
    run_on(&executor_for(spec), || {
        run_plan(&mut state, spec, labels.len(), input.to_vec())?;
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let started = Instant::now();
            run_plan(&mut state, spec, labels.len(), input.to_vec())?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        Ok(times)
    })
}

/// The `n` best labels with their probabilities, best first.
pub fn top_labels<'a>(
    labels: &'a [String],
    probabilities: &[f32],
    n: usize,
) -> Vec<(&'a str, f32)> {
    let mut order: Vec<usize> = (0..probabilities.len().min(labels.len())).collect();
    order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
    order
        .into_iter()
        .take(n)
        .map(|i| (labels[i].as_str(), probabilities[i]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one() {
        let mut v = vec![1.0, 2.0, 3.0, 1000.0];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[3] > 0.99);
    }

    #[test]
    fn top_labels_are_sorted() {
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let top = top_labels(&labels, &[0.2, 0.5, 0.3], 2);
        assert_eq!(top, vec![("b", 0.5), ("c", 0.3)]);
    }
}
