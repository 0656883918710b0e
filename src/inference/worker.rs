//! Each model's worker threads: the first loads the graph (so a graph is
//! loaded on the threads that run it, after the fork when daemonized) and
//! starts its siblings, which share the optimized plan. Jobs carry the
//! decoded image and their own reply channel: the worker crops, resizes
//! and runs, so no pixel work and no inference runs on the async runtime.

use super::load::{fed_shape, load_model, Plan};
use super::registry::Model;
use super::{preprocess, ModelError};
use crate::config::{Layout, ModelConfig};
use crate::image::source::View;
use crate::image::Window;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_tensorflow::prelude::*;
use tract_tensorflow::tract_core::model::TypedSimpleState;

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
pub(super) struct Job {
    pub(super) view: View,
    pub(super) x: u32,
    pub(super) y: u32,
    pub(super) queued_at: Instant,
    pub(super) reply: oneshot::Sender<Result<Inference, ModelError>>,
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

/// Model worker threads running, of every registry alive.
pub(super) static WORKERS_ALIVE: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// Spawns the model's first worker, which loads the graph and then starts
/// its siblings. The returned channel yields the ready model or the reason
/// it could not load.
pub(super) fn start_model(
    spec: ModelConfig,
) -> std::sync::mpsc::Receiver<Result<Model, ModelError>> {
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

pub(super) fn run_plan(
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

fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    v.iter_mut().for_each(|x| *x /= sum);
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
