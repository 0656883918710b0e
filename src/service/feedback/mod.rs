//! What users finally chose, and how often the models had offered it.
//!
//! Every served prediction is remembered for a while (the last
//! `recent-predictions` of them): its id, and per model the version and the
//! five labels offered with their probabilities. `POST /v1/feedback` names a
//! prediction id, a model and the label the user picked; the record is
//! appended to `feedback-log` as one JSON line and flushed to disk
//! (`fdatasync`) before the 204 goes out, so an acknowledged feedback
//! survives a crash. At start the log is read back, so the hit rates of
//! `GET /v1/stats` cover every feedback ever logged.
//!
//! A second feedback for the same prediction and model replaces the first
//! (the user changed their mind): the counts use the latest choice, in
//! memory and when the log is replayed. The latest choice is kept only for
//! predictions that can still get feedback (the recent ones): memory stays
//! bounded by `recent-predictions` however much feedback comes in. On
//! replay a change of mind is recognised within the last
//! 4 x `recent-predictions` choices read, which covers any change of mind
//! the daemon could have accepted.

mod recent;
mod stats;

use recent::{Held, Recent};
use serde::{Deserialize, Serialize};
use stats::Stats;
pub use stats::{ModelReport, StatsReport, VersionStats};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Labels offered per model and counted as "top 5".
pub const OFFERED: usize = 5;

/// What one model offered for one prediction.
#[derive(Debug, Clone)]
pub struct Offer {
    pub model: String,
    pub version: String,
    pub labels: Arc<Vec<String>>,
    /// Label index and probability, best first, at most [`OFFERED`].
    pub top: Vec<(u32, f32)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Offered {
    pub label: String,
    pub probability: f32,
}

/// One line of `feedback-log`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub time: String,
    pub id: String,
    pub model: String,
    pub version: String,
    pub offered: Vec<Offered>,
    pub chosen: String,
}

impl Record {
    pub(super) fn hits(&self) -> (bool, bool) {
        let top1 = self.offered.first().is_some_and(|o| o.label == self.chosen);
        let top5 = self
            .offered
            .iter()
            .take(OFFERED)
            .any(|o| o.label == self.chosen);
        (top1, top5)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    #[error("No recent prediction with id {0:?} (unknown, or older than the last server.recent-predictions)")]
    UnknownPrediction(String),
    #[error("Prediction {id} did not use model {model:?}")]
    UnknownModel { id: String, model: String },
    #[error("{chosen:?} is not a label of model {model:?}")]
    UnknownLabel { model: String, chosen: String },
    #[error("Cannot write the feedback log {path}: {reason}")]
    Log { path: PathBuf, reason: String },
}

/// Recent predictions, the feedback statistics and the log.
pub struct FeedbackStore {
    recent: Mutex<Recent>,
    stats: Mutex<Stats>,
    log: Mutex<Option<(PathBuf, File)>>,
}

/// What reading the log back found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    pub records: u64,
    /// Lines that did not parse (a torn last line after a crash).
    pub skipped: u64,
}

impl FeedbackStore {
    /// Opens (creating) the log at `path` and replays it; an empty path
    /// keeps feedback in memory only.
    pub fn open(path: &Path, capacity: usize) -> Result<(FeedbackStore, Replay), FeedbackError> {
        let mut stats = Stats::default();
        let mut replay = Replay::default();
        // Keys of `stats.latest` in the order read, to bound it while
        // replaying a long log.
        let window = capacity.max(1).saturating_mul(4);
        let mut read_order: VecDeque<(String, String)> = VecDeque::new();
        let mut in_window: HashMap<(String, String), u32> = HashMap::new();
        let log = if path.as_os_str().is_empty() {
            None
        } else {
            let err = |e: std::io::Error| FeedbackError::Log {
                path: path.to_path_buf(),
                reason: e.to_string(),
            };
            let mut file = OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .open(path)
                .map_err(err)?;
            for line in BufReader::new(&file).split(b'\n') {
                let line = line.map_err(err)?;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match serde_json::from_slice::<Record>(&line) {
                    Ok(r) => {
                        stats.apply(&r);
                        replay.records += 1;
                        let key = (r.id, r.model);
                        *in_window.entry(key.clone()).or_default() += 1;
                        read_order.push_back(key);
                        if read_order.len() > window {
                            let old = read_order.pop_front().expect("not empty");
                            let left = in_window.get_mut(&old).map(|n| {
                                *n -= 1;
                                *n
                            });
                            if left == Some(0) {
                                in_window.remove(&old);
                                stats.latest.remove(&old);
                            }
                        }
                    }
                    Err(_) => replay.skipped += 1,
                }
            }
            // A crash mid-line leaves no newline: start the next record on
            // a line of its own so it is not lost with the torn one.
            let len = file.seek(SeekFrom::End(0)).map_err(err)?;
            if len > 0 {
                let mut last = [0u8];
                file.seek(SeekFrom::Start(len - 1)).map_err(err)?;
                file.read_exact(&mut last).map_err(err)?;
                if last[0] != b'\n' {
                    file.write_all(b"\n").map_err(err)?;
                }
            }
            Some((path.to_path_buf(), file))
        };
        // No prediction of an earlier process can get feedback now.
        stats.latest = HashMap::new();
        Ok((
            FeedbackStore {
                recent: Mutex::new(Recent {
                    capacity: capacity.max(1),
                    order: VecDeque::new(),
                    offers: HashMap::new(),
                    names: HashSet::new(),
                }),
                stats: Mutex::new(stats),
                log: Mutex::new(log),
            },
            replay,
        ))
    }

    /// Remembers a served prediction and counts it.
    pub fn record_prediction(&self, id: &str, offers: Vec<Offer>) {
        {
            let mut stats = lock(&self.stats);
            for o in &offers {
                let m = stats.models.entry(o.model.clone()).or_default();
                m.predictions += 1;
                m.versions.entry(o.version.clone()).or_default().0 += 1;
            }
        }
        let evicted = {
            let mut recent = lock(&self.recent);
            let evicted = recent.evict(1);
            let held: Arc<[Held]> = offers.into_iter().map(|o| recent.hold(o)).collect();
            let id: Arc<str> = Arc::from(id);
            recent.order.push_back(id.clone());
            recent.offers.insert(id, held);
            evicted
        };
        self.forget(evicted);
    }

    /// Changes how many predictions are remembered (on reload).
    pub fn set_capacity(&self, capacity: usize) {
        let evicted = {
            let mut recent = lock(&self.recent);
            recent.capacity = capacity.max(1);
            recent.evict(0)
        };
        self.forget(evicted);
    }

    /// Predictions that can no longer get feedback: their latest choices
    /// are not needed any more.
    fn forget(&self, evicted: Vec<(Arc<str>, Arc<[Held]>)>) {
        if evicted.is_empty() {
            return;
        }
        let mut stats = lock(&self.stats);
        for (id, offers) in evicted {
            for o in offers.iter() {
                stats.latest.remove(&(id.to_string(), o.model.to_string()));
            }
        }
    }

    /// How many (prediction, model) choices are held for changes of mind.
    #[cfg(test)]
    pub fn choices_held(&self) -> usize {
        lock(&self.stats).latest.len()
    }

    /// Records what the user chose. Blocking (writes and syncs the log).
    pub fn submit(&self, id: &str, model: &str, chosen: &str) -> Result<Record, FeedbackError> {
        let offers = lock(&self.recent)
            .offers
            .get(id)
            .cloned()
            .ok_or_else(|| FeedbackError::UnknownPrediction(id.to_string()))?;
        let offer = offers.iter().find(|o| &*o.model == model).ok_or_else(|| {
            FeedbackError::UnknownModel {
                id: id.to_string(),
                model: model.to_string(),
            }
        })?;
        if !offer.labels.iter().any(|l| l == chosen) {
            return Err(FeedbackError::UnknownLabel {
                model: model.to_string(),
                chosen: chosen.to_string(),
            });
        }
        let record = Record {
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            id: id.to_string(),
            model: model.to_string(),
            version: offer.version.to_string(),
            offered: offer.offered(),
            chosen: chosen.to_string(),
        };
        // The log lock is held until the stats are updated, so the order of
        // the lines is the order the counts saw.
        let mut log = lock(&self.log);
        if let Some((path, file)) = log.as_mut() {
            let mut line = serde_json::to_vec(&record).expect("a record serializes");
            line.push(b'\n');
            file.write_all(&line)
                .and_then(|()| file.sync_data())
                .map_err(|e| FeedbackError::Log {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
        }
        lock(&self.stats).apply(&record);
        drop(log);
        Ok(record)
    }

    pub fn report(&self) -> StatsReport {
        let stats = lock(&self.stats);
        let models = stats
            .models
            .iter()
            .map(|(name, m)| {
                let report = ModelReport {
                    predictions: m.predictions,
                    rates: m.hits.into(),
                    labels: m
                        .labels
                        .iter()
                        .filter(|(_, h)| h.feedback > 0)
                        .map(|(l, h)| (l.clone(), (*h).into()))
                        .collect(),
                    versions: m
                        .versions
                        .iter()
                        .map(|(v, (p, h))| {
                            (
                                v.clone(),
                                VersionStats {
                                    predictions: *p,
                                    rates: (*h).into(),
                                },
                            )
                        })
                        .collect(),
                };
                (name.clone(), report)
            })
            .collect();
        StatsReport { models }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::stats::Rates;
    use super::*;

    fn offer(model: &str, version: &str, top: &[u32]) -> Offer {
        let labels: Vec<String> = ["red", "green", "blue", "grey", "pink", "gold", "black"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        Offer {
            model: model.into(),
            version: version.into(),
            labels: Arc::new(labels),
            top: top.iter().map(|&i| (i, 0.5)).collect(),
        }
    }

    /// Versions come and go with reloads; the remembered predictions keep
    /// one copy of each name, and a name no prediction holds is dropped.
    #[test]
    fn names_are_shared_and_dropped_with_their_last_prediction() {
        let (store, _) = FeedbackStore::open(Path::new(""), 10).unwrap();
        for i in 0..1000 {
            let version = format!("sha256:{}", i / 50);
            store.record_prediction(
                &format!("id-{i}"),
                vec![
                    offer("color", &version, &[0, 1]),
                    offer("theme", &version, &[2]),
                ],
            );
        }
        let recent = lock(&store.recent);
        assert_eq!(recent.order.len(), 10);
        // "color", "theme" and the one version of the last 10 predictions.
        assert_eq!(recent.names.len(), 3, "{:?}", recent.names);
        let held = &recent.offers["id-999"];
        assert!(Arc::ptr_eq(&held[0].version, &held[1].version));
        assert!(Arc::ptr_eq(
            &held[0].version,
            &recent.offers["id-990"][0].version
        ));
        assert_eq!(held[0].offered().len(), 2);
        assert_eq!(held[1].offered()[0].label, "blue");
    }

    #[test]
    fn choices_are_held_only_for_predictions_that_can_still_get_feedback() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("feedback.jsonl");
        let (store, _) = FeedbackStore::open(&log, 3).unwrap();
        for n in 0..1000 {
            let id = format!("p{n}");
            store.record_prediction(
                &id,
                vec![
                    offer("color", "v1", &[0, 1, 2, 3, 4]),
                    offer("theme", "v1", &[0, 1, 2, 3, 4]),
                ],
            );
            store.submit(&id, "color", "red").unwrap();
            store.submit(&id, "theme", "blue").unwrap();
            store.submit(&id, "theme", "green").unwrap(); // changed their mind
            assert!(store.choices_held() <= 3 * 2, "{}", store.choices_held());
        }
        let r = &store.report().models["theme"];
        assert_eq!((r.rates.feedback, r.labels.get("blue")), (1000, None));
        drop(store);
        // Replayed: the same counts, and nothing held after the replay.
        let (store, replay) = FeedbackStore::open(&log, 3).unwrap();
        assert_eq!(replay.records, 3000);
        assert_eq!(store.choices_held(), 0);
        let r = &store.report().models["theme"];
        assert_eq!((r.rates.feedback, r.labels.get("blue")), (1000, None));
        assert_eq!(r.labels["green"].feedback, 1000);
    }

    #[test]
    fn hit_rates_on_a_known_sequence() {
        let (store, _) = FeedbackStore::open(Path::new(""), 10).unwrap();
        // Offered red, green, blue, grey, pink for every prediction.
        for id in ["a", "b", "c", "d"] {
            store.record_prediction(id, vec![offer("color", "v1", &[0, 1, 2, 3, 4])]);
        }
        store.submit("a", "color", "red").unwrap(); // top-1
        store.submit("b", "color", "blue").unwrap(); // top-5
        store.submit("c", "color", "gold").unwrap(); // miss
        store.submit("d", "color", "red").unwrap(); // top-1
        let r = &store.report().models["color"];
        assert_eq!(r.predictions, 4);
        assert_eq!(
            r.rates,
            Rates {
                feedback: 4,
                top1: Some(0.5),
                top5: Some(0.75)
            }
        );
        assert_eq!(
            r.labels["red"],
            Rates {
                feedback: 2,
                top1: Some(1.0),
                top5: Some(1.0)
            }
        );
        assert_eq!(r.labels["gold"].top5, Some(0.0));
        assert_eq!(r.versions["v1"].predictions, 4);
        // The user changes their mind on "c": the miss becomes a top-1.
        store.submit("c", "color", "red").unwrap();
        let r = &store.report().models["color"];
        assert_eq!(r.rates.feedback, 4);
        assert_eq!(r.rates.top1, Some(0.75));
        assert!(!r.labels.contains_key("gold"));
    }

    #[test]
    fn refuses_unknown_ids_models_and_labels() {
        let (store, _) = FeedbackStore::open(Path::new(""), 2).unwrap();
        store.record_prediction("a", vec![offer("color", "v1", &[0])]);
        assert!(matches!(
            store.submit("z", "color", "red"),
            Err(FeedbackError::UnknownPrediction(_))
        ));
        assert!(matches!(
            store.submit("a", "theme", "red"),
            Err(FeedbackError::UnknownModel { .. })
        ));
        assert!(matches!(
            store.submit("a", "color", "mauve"),
            Err(FeedbackError::UnknownLabel { .. })
        ));
        // Only the last two predictions are remembered.
        store.record_prediction("b", vec![offer("color", "v1", &[0])]);
        store.record_prediction("c", vec![offer("color", "v1", &[0])]);
        assert!(store.submit("a", "color", "red").is_err());
        assert!(store.submit("c", "color", "red").is_ok());
    }

    #[test]
    fn the_log_is_replayed_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feedback.jsonl");
        {
            let (store, replay) = FeedbackStore::open(&path, 10).unwrap();
            assert_eq!(replay, Replay::default());
            store.record_prediction("a", vec![offer("color", "v1", &[0, 1])]);
            store.record_prediction("b", vec![offer("color", "v2", &[1, 0])]);
            store.submit("a", "color", "red").unwrap();
            store.submit("b", "color", "red").unwrap();
        }
        // A crash in the middle of writing a third line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"time":"2026-11-25T00:00:00Z","id":"c","mod"#)
            .unwrap();
        drop(f);
        let (store, replay) = FeedbackStore::open(&path, 10).unwrap();
        assert_eq!(
            replay,
            Replay {
                records: 2,
                skipped: 1
            }
        );
        let r = &store.report().models["color"];
        assert_eq!(r.rates.feedback, 2);
        assert_eq!(r.rates.top1, Some(0.5));
        assert_eq!(r.versions["v2"].rates.top5, Some(1.0));
        // Predictions are counted per process; feedback survives.
        assert_eq!(r.predictions, 0);
        // The next record starts on its own line and is read back.
        store.record_prediction("d", vec![offer("color", "v2", &[2])]);
        store.submit("d", "color", "blue").unwrap();
        drop(store);
        let (_, replay) = FeedbackStore::open(&path, 10).unwrap();
        assert_eq!(replay.records, 3);
        assert_eq!(replay.skipped, 1);
    }
}
