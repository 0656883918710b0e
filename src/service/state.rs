//! What the daemon serves, and the one owner that changes it.
//!
//! The config and the models are one value, [`Served`], swapped whole: a
//! request reads both from the same snapshot, and a reload replaces both
//! at once. Only the loader thread (`predictd-loader`) builds and swaps
//! them. The start-up load, SIGHUP and `POST /v1/reload` all send it a
//! [`Job`] and it runs them one after the other, so the start-up load can
//! never overwrite a newer reload and two reloads never interleave.
//! Nothing here knows HTTP.

use crate::config::{Config, ConfigError};
use crate::image::cache::ImageCache;
use crate::image::PixelBudget;
use crate::inference::{ModelError, Registry};
use crate::service::feedback::FeedbackStore;
use crate::service::metrics::Metrics;
use crate::service::paths::ImageRoots;
use crate::service::ratelimit::{ConnectionCounts, RateLimiter};
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Weak};
use std::time::Instant;
use tokio::sync::oneshot;

/// How `serve` was asked to run, beyond the config file.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Re-read on reload; `None` means built-in defaults.
    pub config_path: Option<PathBuf>,
    /// `--socket`, kept across reloads.
    pub socket: Option<PathBuf>,
    /// `--pidfile`, kept across reloads.
    pub pidfile: Option<PathBuf>,
    /// `--http`: also listen on TCP.
    pub http: Option<SocketAddr>,
    /// The folder `serve` was started in, read once before the fork: the
    /// built-in defaults (`models/`, `labels/`, `predictd.sock`) and
    /// relative command-line paths are resolved against it at start and on
    /// every reload, though a daemon runs in `/`.
    pub cwd: PathBuf,
}

impl Options {
    /// Loads the config file (or defaults) and applies command-line overrides.
    pub fn load_config(&self) -> Result<Config, ConfigError> {
        let mut config = Config::load_in(self.config_path.as_deref(), &self.cwd)?;
        if let Some(s) = &self.socket {
            config.server.socket = self.cwd.join(s);
        }
        if let Some(p) = &self.pidfile {
            config.server.pidfile = self.cwd.join(p);
        }
        config.check_http(self.http)?;
        Ok(config)
    }
}

/// The config and the models in service, swapped as one value.
pub struct Served {
    pub config: Arc<Config>,
    /// The config's `image-roots`, each opened once as a directory (the
    /// path jail opens requested files beneath them).
    pub roots: Arc<ImageRoots>,
    /// `None` until the start-up load finishes: `/readyz` says 503 meanwhile.
    pub registry: Option<Arc<Registry>>,
}

/// What a successful reload swapped in.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    pub status: &'static str,
    /// Model name to its new version.
    pub models: std::collections::BTreeMap<String, String>,
    pub ms: f64,
}

/// Work for the loader thread.
enum Job {
    /// Load the models of the config given at start.
    Start(oneshot::Sender<Result<(), ModelError>>),
    /// Re-read the config and load every model on the side; swap them in
    /// only when all pass their test inference.
    Reload(Option<oneshot::Sender<Result<ReloadReport, ReloadError>>>),
}

/// Everything a request may need, shared by every connection.
pub struct State {
    served: ArcSwap<Served>,
    /// How to re-read the config on reload.
    pub options: Options,
    /// The loader thread's inbox (see [`State::start`]).
    loader: mpsc::Sender<Job>,
    /// Per-caller token buckets (`rate-per-uid`, `rate-burst`).
    pub limiter: RateLimiter,
    /// Open connections per caller (`max-connections-per-uid`).
    pub connections: Arc<ConnectionCounts>,
    pub metrics: Metrics,
    /// Recent predictions, feedback and hit rates.
    pub feedback: FeedbackStore,
    /// `max-decoding-pixels`, shared by every request (fixed at start).
    pub decode_budget: PixelBudget,
    /// `image-cache-bytes` of decoded images (fixed at start).
    pub image_cache: ImageCache,
}

impl State {
    /// The state, and its `predictd-loader` thread: the only one that
    /// changes what is served. The thread ends when the state is dropped.
    pub fn start(
        config: Config,
        options: Options,
        feedback: FeedbackStore,
    ) -> std::io::Result<Arc<State>> {
        let (loader, inbox) = mpsc::channel::<Job>();
        let state = Arc::new(State {
            decode_budget: PixelBudget::new(config.server.max_decoding_pixels),
            image_cache: ImageCache::new(config.server.image_cache_bytes),
            served: ArcSwap::from_pointee(Served {
                roots: Arc::new(ImageRoots::open(&config.server.image_roots)),
                config: Arc::new(config),
                registry: None,
            }),
            options,
            loader,
            limiter: RateLimiter::new(),
            connections: Arc::default(),
            metrics: Metrics::new(),
            feedback,
        });
        let weak: Weak<State> = Arc::downgrade(&state);
        std::thread::Builder::new()
            .name("predictd-loader".into())
            .spawn(move || {
                while let Ok(job) = inbox.recv() {
                    let Some(state) = weak.upgrade() else { break };
                    state.run(job);
                }
            })?;
        Ok(state)
    }

    /// The config and models in service now, as one snapshot.
    pub fn served(&self) -> Arc<Served> {
        self.served.load_full()
    }

    pub fn config(&self) -> Arc<Config> {
        self.served.load().config.clone()
    }

    pub fn registry(&self) -> Option<Arc<Registry>> {
        self.served.load().registry.clone()
    }

    /// Asks the loader for the start-up load; the answer comes when the
    /// models are in service, or with the error that stopped them.
    pub fn start_load(&self) -> oneshot::Receiver<Result<(), ModelError>> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Start(tx));
        rx
    }

    /// Asks the loader for a reload (SIGHUP); returns at once.
    pub fn request_reload(&self) {
        self.send(Job::Reload(None));
    }

    /// Asks the loader for a reload and waits for its outcome.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Reload(Some(tx)));
        rx.await.unwrap_or(Err(ReloadError::LoaderGone))
    }

    /// Hands `job` to the loader. If the loader is gone, the job's reply
    /// channel is dropped with it and the asker hears so.
    fn send(&self, job: Job) {
        let _ = self.loader.send(job);
    }

    fn run(&self, job: Job) {
        match job {
            Job::Start(reply) => {
                let _ = reply.send(self.load_at_start());
            }
            Job::Reload(reply) => {
                let outcome = self.reload_now();
                if let Some(reply) = reply {
                    let _ = reply.send(outcome);
                }
            }
        }
    }

    fn load_at_start(&self) -> Result<(), ModelError> {
        let served = self.served();
        if served.registry.is_some() {
            // A reload asked for during start-up ran first and is newer.
            return Ok(());
        }
        let started = Instant::now();
        let registry = Registry::load(&served.config)?;
        self.metrics.set_models(&registry);
        self.served.store(Arc::new(Served {
            config: served.config.clone(),
            roots: served.roots.clone(),
            registry: Some(Arc::new(registry)),
        }));
        log::info!(
            "ready: {} models loaded in {:.0} ms",
            served.config.models.len(),
            started.elapsed().as_secs_f64() * 1e3
        );
        Ok(())
    }

    /// Re-reads the config and loads every model on the side; only when all
    /// load and pass their test inference are config and models swapped in,
    /// together. Requests in flight keep the snapshot they started with. On
    /// failure nothing changes.
    fn reload_now(&self) -> Result<ReloadReport, ReloadError> {
        let started = Instant::now();
        let built = self
            .options
            .load_config()
            .map_err(ReloadError::Config)
            .and_then(|config| {
                Registry::load(&config)
                    .map(|r| (config, r))
                    .map_err(ReloadError::Models)
            });
        // Two decimals are all a millisecond figure is worth in an answer.
        let ms = (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
        match built {
            Ok((mut config, registry)) => {
                let old = self.config();
                keep_start_only(&mut config, &old);
                self.feedback.set_capacity(config.server.recent_predictions);
                let models = registry
                    .models
                    .iter()
                    .map(|m| (m.info.name.clone(), m.info.version.clone()))
                    .collect();
                self.metrics.set_models(&registry);
                self.served.store(Arc::new(Served {
                    roots: Arc::new(ImageRoots::open(&config.server.image_roots)),
                    config: Arc::new(config),
                    registry: Some(Arc::new(registry)),
                }));
                self.metrics.reload_outcome("ok");
                log::info!("reload: ok in {ms:.0} ms: {models:?}");
                Ok(ReloadReport {
                    status: "reloaded",
                    models,
                    ms,
                })
            }
            Err(e) => {
                self.metrics.reload_outcome("failed");
                log::error!("reload: failed after {ms:.0} ms, still serving the old models: {e}");
                Err(e)
            }
        }
    }
}

/// Why a reload failed; the old config and models keep serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config file no longer reads or validates.
    #[error(transparent)]
    Config(ConfigError),
    /// A model of the new config did not load or failed its self-test.
    #[error(transparent)]
    Models(ModelError),
    /// The loader thread is gone (only while stopping).
    #[error("the loader thread is gone")]
    LoaderGone,
}

/// `[server]` keys used only at start (to bind, to size what is built
/// once): a reload that changes one warns and keeps the running value.
fn keep_start_only(new: &mut Config, old: &Config) {
    fn keep<T: PartialEq + Clone + std::fmt::Debug>(key: &str, new: &mut T, running: &T) {
        if new != running {
            log::warn!("reload: a new server.{key} takes a restart; still {running:?}");
            *new = running.clone();
        }
    }
    let (n, o) = (&mut new.server, &old.server);
    keep("socket", &mut n.socket, &o.socket);
    keep("socket-mode", &mut n.socket_mode, &o.socket_mode);
    keep("socket-group", &mut n.socket_group, &o.socket_group);
    keep("pidfile", &mut n.pidfile, &o.pidfile);
    keep("syslog-socket", &mut n.syslog_socket, &o.syslog_socket);
    keep(
        "max-connections",
        &mut n.max_connections,
        &o.max_connections,
    );
    keep("feedback-log", &mut n.feedback_log, &o.feedback_log);
    keep(
        "max-decoding-pixels",
        &mut n.max_decoding_pixels,
        &o.max_decoding_pixels,
    );
    keep(
        "image-cache-bytes",
        &mut n.image_cache_bytes,
        &o.image_cache_bytes,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_keeps_every_start_only_key() {
        let old = Config::default();
        let mut new = Config::default();
        new.server.socket = "/elsewhere.sock".into();
        new.server.socket_mode = crate::config::SocketMode(0o600);
        new.server.socket_group = "staff".into();
        new.server.pidfile = "/elsewhere.pid".into();
        new.server.syslog_socket = "/elsewhere/log".into();
        new.server.max_connections = 3;
        new.server.feedback_log = "/elsewhere.jsonl".into();
        new.server.max_decoding_pixels = 1;
        new.server.image_cache_bytes = 1;
        new.server.rate_per_uid = 7; // applies at once
        keep_start_only(&mut new, &old);
        let mut expected = Config::default();
        expected.server.rate_per_uid = 7;
        assert_eq!(new, expected);
    }
}
