//! The model registry: every configured model, loaded and checked, built
//! whole and never changed. A reload builds a new one on the side and
//! swaps it in (`crate::service::state`); the old one goes away when the
//! last request holding it is answered.

use super::worker::{start_model, Inference, Job};
use super::ModelError;
use crate::config::{Config, ModelConfig};
use crate::image::source::View;
use image::RgbImage;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::sync::oneshot;

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
    pub(super) jobs: crossbeam_channel::Sender<Job>,
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

    /// Jobs waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.jobs.len()
    }
}

/// Every configured model, loaded.
pub struct Registry {
    pub models: Vec<Arc<Model>>,
}

/// Registries built and not yet dropped: 1 in service, more only while
/// requests that started before a reload still hold the old one.
static REGISTRIES_ALIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How many model sets and worker threads exist now (for `/metrics`: an
/// old version that outlives its last request shows here).
pub fn alive() -> (usize, usize) {
    use std::sync::atomic::Ordering::Relaxed;
    (
        REGISTRIES_ALIVE.load(Relaxed),
        super::worker::WORKERS_ALIVE.load(Relaxed),
    )
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
        let registry = Registry { models };
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
