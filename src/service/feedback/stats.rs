//! Hit counts of the feedback: per model, per label, per version, with a
//! change of mind replacing the earlier choice.

use super::Record;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Hit counts over a set of feedback.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Hits {
    pub(super) feedback: u64,
    top1: u64,
    top5: u64,
}

impl Hits {
    pub(super) fn add(&mut self, (t1, t5): (bool, bool), sign: i64) {
        let apply = |n: &mut u64, d: bool| {
            if d {
                *n = n.saturating_add_signed(sign);
            }
        };
        apply(&mut self.feedback, true);
        apply(&mut self.top1, t1);
        apply(&mut self.top5, t5);
    }
    pub(super) fn rate(&self, n: u64) -> Option<f64> {
        (self.feedback > 0).then(|| n as f64 / self.feedback as f64)
    }
}

#[derive(Debug, Default)]
pub(super) struct ModelStats {
    pub(super) predictions: u64,
    pub(super) hits: Hits,
    pub(super) labels: BTreeMap<String, Hits>,
    pub(super) versions: BTreeMap<String, (u64, Hits)>,
}

/// The latest feedback for one (prediction, model).
#[derive(Debug, Clone)]
pub(super) struct Latest {
    pub(super) version: String,
    pub(super) chosen: String,
    pub(super) hits: (bool, bool),
}

#[derive(Debug, Default)]
pub(super) struct Stats {
    pub(super) models: BTreeMap<String, ModelStats>,
    /// Only for recent predictions (see the module's doc).
    pub(super) latest: HashMap<(String, String), Latest>,
}

impl Stats {
    pub(super) fn count(
        &mut self,
        model: &str,
        version: &str,
        chosen: &str,
        hits: (bool, bool),
        sign: i64,
    ) {
        let m = self.models.entry(model.to_string()).or_default();
        m.hits.add(hits, sign);
        m.labels
            .entry(chosen.to_string())
            .or_default()
            .add(hits, sign);
        m.versions
            .entry(version.to_string())
            .or_default()
            .1
            .add(hits, sign);
    }

    pub(super) fn apply(&mut self, r: &Record) {
        let hits = r.hits();
        let key = (r.id.clone(), r.model.clone());
        if let Some(old) = self.latest.get(&key).cloned() {
            self.count(&r.model, &old.version, &old.chosen, old.hits, -1);
        }
        self.count(&r.model, &r.version, &r.chosen, hits, 1);
        self.latest.insert(
            key,
            Latest {
                version: r.version.clone(),
                chosen: r.chosen.clone(),
                hits,
            },
        );
    }
}

/// Rates for `GET /v1/stats`: `null` while there is no feedback.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rates {
    pub feedback: u64,
    pub top1: Option<f64>,
    pub top5: Option<f64>,
}

impl From<Hits> for Rates {
    fn from(h: Hits) -> Rates {
        Rates {
            feedback: h.feedback,
            top1: h.rate(h.top1),
            top5: h.rate(h.top5),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VersionStats {
    pub predictions: u64,
    #[serde(flatten)]
    pub rates: Rates,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelReport {
    /// Served by this process since it started.
    pub predictions: u64,
    #[serde(flatten)]
    pub rates: Rates,
    pub labels: BTreeMap<String, Rates>,
    pub versions: BTreeMap<String, VersionStats>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatsReport {
    pub models: BTreeMap<String, ModelReport>,
}
