//! The recent predictions, kept compactly for the feedback they may get.

use super::{Offer, Offered, OFFERED};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// The recent predictions, in the order served. At the default capacity
/// (100,000) this is the daemon's largest table, so an entry is kept small:
/// the id once (shared by the order and the map), the model names and
/// versions interned (one copy per distinct string, not per prediction),
/// the labels shared with the model, the top labels inline: 329 bytes a
/// prediction of two models as jemalloc counts them (659 with a `String`
/// per field and a `Vec` per top list), 33 MB at capacity. The soak
/// (benches/soak.sh) is where this shows: it grew the live memory by about
/// 40 MB in ten minutes before.
pub(super) struct Recent {
    pub(super) capacity: usize,
    pub(super) order: VecDeque<Arc<str>>,
    pub(super) offers: HashMap<Arc<str>, Arc<[Held]>>,
    /// Model names and versions, one copy each.
    pub(super) names: HashSet<Arc<str>>,
}

/// Removes from `names` what only it and the `evicted` entries (about to
/// be dropped) still hold.
pub(super) fn drop_unheld(names: &mut HashSet<Arc<str>>, evicted: &[(Arc<str>, Arc<[Held]>)]) {
    names.retain(|n| {
        let in_evicted = evicted
            .iter()
            .flat_map(|(_, held)| held.iter())
            .map(|h| {
                usize::from(Arc::ptr_eq(&h.model, n)) + usize::from(Arc::ptr_eq(&h.version, n))
            })
            .sum::<usize>();
        Arc::strong_count(n) > 1 + in_evicted
    });
}

/// An [`Offer`] as remembered for feedback.
pub(super) struct Held {
    pub(super) model: Arc<str>,
    pub(super) version: Arc<str>,
    pub(super) labels: Arc<Vec<String>>,
    pub(super) top: [(u32, f32); OFFERED],
    pub(super) len: u8,
}

impl Held {
    pub(super) fn offered(&self) -> Vec<Offered> {
        self.top[..self.len as usize]
            .iter()
            .map(|&(i, p)| Offered {
                label: self.labels[i as usize].clone(),
                probability: p,
            })
            .collect()
    }
}

impl Recent {
    /// The one shared copy of `name`.
    pub(super) fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(held) = self.names.get(name) {
            return held.clone();
        }
        let held: Arc<str> = Arc::from(name);
        self.names.insert(held.clone());
        held
    }

    pub(super) fn hold(&mut self, offer: Offer) -> Held {
        let mut top = [(0, 0.0); OFFERED];
        let len = offer.top.len().min(OFFERED);
        top[..len].copy_from_slice(&offer.top[..len]);
        Held {
            model: self.intern(&offer.model),
            version: self.intern(&offer.version),
            labels: offer.labels,
            top,
            len: len as u8,
        }
    }

    /// Drops the oldest predictions until `room` more fit in `capacity`.
    pub(super) fn evict(&mut self, room: usize) -> Vec<(Arc<str>, Arc<[Held]>)> {
        let mut evicted = Vec::new();
        while self.order.len() + room > self.capacity {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(offers) = self.offers.remove(&old) {
                evicted.push((old, offers));
            }
        }
        if !evicted.is_empty() {
            // Names no prediction holds any more (versions replaced by
            // reloads) go too: only the set itself still points to them.
            // The set holds a few names (models x versions in the window).
            drop_unheld(&mut self.names, &evicted);
        }
        evicted
    }
}
