//! Prometheus metrics for `GET /metrics` (the `prometheus-client` crate).
//!
//! Counters and histograms are updated where things happen; values that
//! are states rather than events (queue depths, loaded versions, memory,
//! feedback hit rates) are read when the page is scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub model: String,
    pub version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// `unix` (keyed by uid) or `tcp` (keyed by address).
    pub listener: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn seconds_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn batch_histogram() -> Histogram {
    Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pub inference_seconds: Family<ModelLabels, Histogram, fn() -> Histogram>,
    pub batch_size: Family<ModelLabels, Histogram, fn() -> Histogram>,
    pub queue_depth: Family<ModelLabels, Gauge>,
    pub queue_rejections: Family<ModelLabels, Counter>,
    pub decode_seconds: Histogram,
    pub model_load_seconds: Family<VersionLabels, FloatGauge>,
    pub model_info: Family<VersionLabels, Gauge>,
    pub reloads: Family<OutcomeLabels, Counter>,
    pub rate_limited: Family<ListenerLabels, Counter>,
    pub feedback: Family<ModelLabels, Counter>,
    pub feedback_hit_ratio: Family<HitLabels, FloatGauge>,
    pub in_flight: Gauge,
    /// Pixels held in the `max-decoding-pixels` budget.
    pub decoding_pixels: Gauge,
    pub image_cache_hits: Counter,
    pub image_cache_misses: Counter,
    pub image_cache_bytes: Gauge,
    pub image_cache_images: Gauge,
    pub connections_refused: Family<LimitLabels, Counter>,
    pub resident_memory: Gauge,
    pub virtual_memory: Gauge,
    /// The allocator's own books (see [`crate::daemon::memory::Stats`]).
    pub allocator_bytes: Family<PartLabels, Gauge>,
    pub registries_alive: Gauge,
    pub workers_alive: Gauge,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartLabels {
    /// `allocated`, `active`, `resident`, `mapped` or `retained`.
    pub part: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// The config key of the limit.
    pub limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HitLabels {
    pub model: String,
    /// `top1` or `top5`.
    pub rank: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// One answered (or abandoned) request: its count by route and
    /// status, and its duration.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status,
            })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels {
                route: route.to_string(),
            })
            .observe(seconds);
    }

    /// One model's part of a served prediction.
    pub fn inference(&self, model: &str, seconds: f64) {
        let labels = ModelLabels {
            model: model.to_string(),
        };
        self.inference_seconds
            .get_or_create(&labels)
            .observe(seconds);
        self.batch_size.get_or_create(&labels).observe(1.0);
    }

    /// A request refused because `model`'s queue was full.
    pub fn queue_rejected(&self, model: &str) {
        self.queue_rejections
            .get_or_create(&ModelLabels {
                model: model.to_string(),
            })
            .inc();
    }

    pub fn queue_depth(&self, model: &str, depth: usize) {
        self.queue_depth
            .get_or_create(&ModelLabels {
                model: model.to_string(),
            })
            .set(depth as i64);
    }

    /// A feedback recorded for `model`.
    pub fn feedback(&self, model: &str) {
        self.feedback
            .get_or_create(&ModelLabels {
                model: model.to_string(),
            })
            .inc();
    }

    /// `rank` is `top1` or `top5`.
    pub fn hit_ratio(&self, model: &str, rank: &str, rate: f64) {
        self.feedback_hit_ratio
            .get_or_create(&HitLabels {
                model: model.to_string(),
                rank: rank.to_string(),
            })
            .set(rate);
    }

    /// A request refused by the rate limit, by listener (`unix`, `tcp`).
    pub fn rate_limited(&self, listener: &str) {
        self.rate_limited
            .get_or_create(&ListenerLabels {
                listener: listener.to_string(),
            })
            .inc();
    }

    /// A connection refused at once, by the limit that was full.
    pub fn connection_refused(&self, limit: &str) {
        self.connections_refused
            .get_or_create(&LimitLabels {
                limit: limit.to_string(),
            })
            .inc();
    }

    /// Counts a reload's outcome (`ok` or `failed`).
    pub fn reload_outcome(&self, outcome: &str) {
        self.reloads
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Every metric, created and registered in one place: one line each,
    /// name, help and kind, in the order `/metrics` lists them.
    pub fn new() -> Metrics {
        fn add<M: Metric + Clone>(r: &mut Registry, name: &str, help: &str, metric: M) -> M {
            r.register(name, help, metric.clone());
            metric
        }
        let mut registry = Registry::default();
        let r = &mut registry;
        let metrics = Metrics {
            requests: add(r, "predictd_requests", "HTTP requests answered, by route and status", Family::default()),
            request_seconds: add(r, "predictd_request_duration_seconds", "Time from request to response, by route", Family::new_with_constructor(seconds_histogram)),
            inference_seconds: add(r, "predictd_inference_duration_seconds", "Crop, resize and model run of one job on a worker thread, by model", Family::new_with_constructor(seconds_histogram)),
            batch_size: add(r, "predictd_inference_batch_size", "Images per model run (predictd runs one image at a time)", Family::new_with_constructor(batch_histogram)),
            queue_depth: add(r, "predictd_queue_depth", "Jobs waiting for a worker, by model", Family::default()),
            queue_rejections: add(r, "predictd_queue_rejections", "Jobs refused because the model's queue was full (503 overloaded)", Family::default()),
            decode_seconds: add(r, "predictd_decode_duration_seconds", "Image decoding (sniff, header check, decode, EXIF orientation)", seconds_histogram()),
            model_load_seconds: add(r, "predictd_model_load_duration_seconds", "How long loading each serving model took", Family::default()),
            model_info: add(r, "predictd_model_loaded", "1 for each model and version being served", Family::default()),
            reloads: add(r, "predictd_reloads", "Reloads (SIGHUP or POST /v1/reload), by outcome", Family::default()),
            rate_limited: add(r, "predictd_rate_limited", "Requests refused with 429 by the per-caller rate limit", Family::default()),
            feedback: add(r, "predictd_feedback", "Feedback received by this process, by model", Family::default()),
            feedback_hit_ratio: add(r, "predictd_feedback_hit_ratio", "Share of all logged feedback whose chosen label was offered first (top1) or in the top five (top5)", Family::default()),
            in_flight: add(r, "predictd_requests_in_flight", "Requests being handled now", Gauge::default()),
            decoding_pixels: add(r, "predictd_decoding_pixels", "Pixels of images being decoded or held for their models now (bounded by max-decoding-pixels)", Gauge::default()),
            image_cache_hits: add(r, "predictd_image_cache_hits", "Predictions whose image (the upload and what was decoded of it) came from the image cache", Counter::default()),
            image_cache_misses: add(r, "predictd_image_cache_misses", "Predictions that opened their image anew (and offered it to the cache)", Counter::default()),
            image_cache_bytes: add(r, "predictd_image_cache_bytes", "Bytes of uploads and decoded planes in the image cache (bounded by image-cache-bytes)", Gauge::default()),
            image_cache_images: add(r, "predictd_image_cache_images", "Images in the image cache", Gauge::default()),
            connections_refused: add(r, "predictd_connections_refused", "Connections answered 503 at once, by the limit that was full (max-connections, max-connections-per-uid)", Family::default()),
            resident_memory: add(r, "predictd_process_resident_memory_bytes", "Resident set size of the daemon", Gauge::default()),
            virtual_memory: add(r, "predictd_process_virtual_memory_bytes", "Virtual memory size of the daemon", Gauge::default()),
            allocator_bytes: add(r, "predictd_allocator_bytes", "jemalloc's books: bytes the program holds (allocated), in pages in use (active), resident pages of the allocator including its free ones not yet returned (resident), mapped (mapped), and address space kept but returned to the system (retained)", Family::default()),
            registries_alive: add(r, "predictd_model_sets_alive", "Loaded model sets not yet dropped: 1, and more only while requests begun before a reload hold an old one", Gauge::default()),
            workers_alive: add(r, "predictd_model_worker_threads", "Model worker threads running, of every model set alive", Gauge::default()),
            registry: Registry::default(),
        };
        add(r, "predictd_log_lines_dropped", "Log lines dropped because the log thread was behind (syslog or stderr not reading); logging never blocks a request", crate::daemon::logging::dropped_lines().clone());
        Metrics {
            registry,
            ..metrics
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        if let Some((rss, vsz)) = process_memory() {
            self.resident_memory.set(rss as i64);
            self.virtual_memory.set(vsz as i64);
        }
        if let Some(a) = crate::daemon::memory::stats() {
            for (part, bytes) in [
                ("allocated", a.allocated),
                ("active", a.active),
                ("resident", a.resident),
                ("mapped", a.mapped),
                ("retained", a.retained),
            ] {
                self.allocator_bytes
                    .get_or_create(&PartLabels { part: part.into() })
                    .set(bytes as i64);
            }
        }
        let (sets, workers) = crate::inference::alive();
        self.registries_alive.set(sets as i64);
        self.workers_alive.set(workers as i64);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }

    /// Shows `registry`'s models (and only them) as the ones being served.
    pub fn set_models(&self, registry: &crate::inference::Registry) {
        self.model_info.clear();
        self.model_load_seconds.clear();
        for m in &registry.models {
            let labels = VersionLabels {
                model: m.info.name.clone(),
                version: m.info.version.clone(),
            };
            self.model_info.get_or_create(&labels).set(1);
            self.model_load_seconds
                .get_or_create(&labels)
                .set(m.info.load_ms / 1000.0);
        }
    }
}

/// Resident and virtual size in bytes, from `/proc/self/status`.
pub fn process_memory() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        let n = line[key.len()..].trim().trim_end_matches("kB").trim();
        n.parse::<u64>().ok().map(|k| k * 1024)
    };
    Some((kib("VmRSS:")?, kib("VmSize:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_units() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                route: "/v1/predict".into(),
                status: 200,
            })
            .inc();
        m.decode_seconds.observe(0.002);
        let text = m.encode();
        assert!(
            text.contains(r#"predictd_requests_total{route="/v1/predict",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("predictd_decode_duration_seconds_count 1"),
            "{text}"
        );
        assert!(
            text.contains("predictd_process_resident_memory_bytes "),
            "{text}"
        );
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            assert!(line.starts_with("predictd_"), "{line}");
        }
    }
}
