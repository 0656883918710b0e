//! Images kept for the next click on the same photo.
//!
//! A person clicks several points on one photo, and the application sends
//! the photo again with each point. Decoding a 12 MP JPEG is the largest
//! part of such a request, so what the models read of it (a
//! [`Source`](crate::image::source::Source): the upload and the planes decoded
//! from it so far) is kept, keyed by the SHA-256 of the uploaded bytes, in
//! a cache bounded in bytes (`image-cache-bytes`). The least recently used
//! image goes first; an image larger than the whole bound is not kept.
//! Models read the very same pixels on a hit as on a miss, so answers do not
//! depend on the cache.

use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The content hash an image is kept under.
pub type Key = [u8; 32];

// Hand-written, not `moka` or `quick_cache` (issue 19 item 9): both weigh
// entries, but neither evicts the least recently used, and what they do
// instead loses the very clicks this cache is for. Measured with 5 MB
// photos in 64 MiB:
// - moka's TinyLFU admission refuses a new photo when the entry it would
//   evict was used more often: a person clicking 4 points on each of 40
//   photos in turn missed 103 of 160 times (here: 40). Its eviction waits
//   for pending tasks: without `run_pending_tasks` after every call it held
//   145 MB under the 64 MiB bound, and `weighted_size` (the /metrics
//   gauge) lagged behind.
// - quick_cache (Clock-PRO, one shard) puts a new entry in a cold queue of
//   3% of the bound (2 MB, less than one photo) once the cache is full, so
//   the next new photo pushes it out: comparing two new photos A, B, A, B
//   hit 0 times (here: 2; test `a_new_photo_is_kept_over_often_used_ones`).
// Both also fail the eviction order of the test below. The lock and the
// linear search of `order` cost 123 ns a get and insert with 13 entries
// (quick_cache: 83 ns), next to milliseconds of hashing and decoding.
pub struct ImageCache<V = crate::image::source::Source> {
    max_bytes: u64,
    inner: Mutex<Inner<V>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct Inner<V> {
    /// Each value with the bytes it was counted for.
    images: HashMap<Key, (Arc<V>, u64)>,
    /// Least recently used first.
    order: VecDeque<Key>,
    bytes: u64,
}

/// What `/metrics` shows of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub bytes: u64,
    pub images: usize,
}

impl<V> ImageCache<V> {
    /// A cache of at most `max_bytes`; 0 keeps nothing.
    pub fn new(max_bytes: u64) -> ImageCache<V> {
        ImageCache {
            max_bytes,
            inner: Mutex::new(Inner {
                images: HashMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub fn enabled(&self) -> bool {
        self.max_bytes > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The image kept under `key`, now the most recently used; counts a
    /// hit or a miss.
    pub fn get(&self, key: &Key) -> Option<Arc<V>> {
        let mut inner = self.lock();
        let found = inner.images.get(key).map(|(v, _)| v.clone());
        if found.is_some() {
            if let Some(at) = inner.order.iter().position(|k| k == key) {
                inner.order.remove(at);
            }
            inner.order.push_back(*key);
            self.hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Keeps `value`, which takes `size` bytes, under `key` (again: the
    /// size of a value that grew is counted anew), evicting the least
    /// recently used images until it fits; one larger than the bound is not
    /// kept.
    pub fn insert(&self, key: Key, value: Arc<V>, size: u64) {
        if size > self.max_bytes {
            return;
        }
        let mut inner = self.lock();
        if let Some((_, old)) = inner.images.insert(key, (value, size)) {
            inner.bytes -= old;
            if let Some(at) = inner.order.iter().position(|k| *k == key) {
                inner.order.remove(at);
            }
        }
        inner.order.push_back(key);
        inner.bytes += size;
        while inner.bytes > self.max_bytes {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some((_, gone)) = inner.images.remove(&oldest) {
                inner.bytes -= gone;
            }
        }
    }

    pub fn stats(&self) -> CacheStats {
        let inner = self.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes: inner.bytes,
            images: inner.images.len(),
        }
    }
}

/// The content hash an upload is kept under.
pub fn key(bytes: &[u8]) -> Key {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    fn image(w: u32, h: u32, v: u8) -> Arc<RgbImage> {
        Arc::new(RgbImage::from_pixel(w, h, image::Rgb([v, v, v])))
    }

    /// Counts an image by its pixels' bytes.
    fn put(cache: &ImageCache<RgbImage>, key: Key, img: Arc<RgbImage>) {
        let size = img.as_raw().len() as u64;
        cache.insert(key, img, size);
    }

    #[test]
    fn the_least_recently_used_image_goes_first_and_the_bound_holds() {
        // 10x10 RGB is 300 bytes; room for three
        let cache = ImageCache::<RgbImage>::new(900);
        let (a, b, c, d) = ([1; 32], [2; 32], [3; 32], [4; 32]);
        put(&cache, a, image(10, 10, 1));
        put(&cache, b, image(10, 10, 2));
        put(&cache, c, image(10, 10, 3));
        assert!(cache.get(&a).is_some()); // a is now the most recent
        put(&cache, d, image(10, 10, 4)); // evicts b
        assert!(cache.get(&b).is_none());
        assert_eq!(cache.get(&a).unwrap().get_pixel(0, 0).0, [1, 1, 1]);
        assert!(cache.get(&c).is_some());
        assert!(cache.get(&d).is_some());
        let s = cache.stats();
        assert_eq!((s.images, s.bytes), (3, 900));
        assert_eq!((s.hits, s.misses), (4, 1));
        // too large for the whole cache: not kept, nothing evicted
        put(&cache, [5; 32], image(20, 20, 5));
        assert_eq!(cache.stats().images, 3);
        // the same key again replaces, without counting twice
        put(&cache, d, image(10, 10, 9));
        assert_eq!(cache.stats().bytes, 900);
        assert_eq!(cache.get(&d).unwrap().get_pixel(0, 0).0, [9, 9, 9]);
    }

    #[test]
    fn a_new_photo_is_kept_over_often_used_ones() {
        // full of three photos clicked often, then two new ones in turn
        let cache = ImageCache::<RgbImage>::new(900);
        for v in 1..=3 {
            put(&cache, [v; 32], image(10, 10, v));
            for _ in 0..5 {
                assert!(cache.get(&[v; 32]).is_some());
            }
        }
        put(&cache, [4; 32], image(10, 10, 4));
        put(&cache, [5; 32], image(10, 10, 5));
        assert!(cache.get(&[4; 32]).is_some(), "the first new photo is kept");
        assert!(cache.get(&[5; 32]).is_some());
        assert!(cache.get(&[3; 32]).is_some());
        assert!(cache.get(&[1; 32]).is_none() && cache.get(&[2; 32]).is_none());
    }

    #[test]
    fn a_zero_bound_keeps_nothing() {
        let cache = ImageCache::<RgbImage>::new(0);
        assert!(!cache.enabled());
        put(&cache, [1; 32], image(1, 1, 1));
        assert_eq!(cache.stats().images, 0);
    }
}
