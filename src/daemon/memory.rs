//! What the allocator holds, from its own books, for `/metrics` and the
//! soak (`benches/soak.sh`).
//!
//! The daemon allocates with jemalloc (set in `main.rs`, for Rust and C
//! code alike). glibc's malloc, used before, kept what a reload freed: the
//! next version's weights and the requests' buffers, allocated in between,
//! pinned the freed pages inside its heaps, and under reloads with load
//! resident memory climbed by a reload's worth at a time (the soak measured
//! 110-160 MB live and 400 MB free after four minutes). jemalloc hands
//! free pages back after `dirty_decay_ms` from a background thread; the
//! settings are in `main.rs` and `MALLOC_CONF` overrides them.

/// The allocator's totals, in bytes (jemalloc's `stats.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Bytes the program has allocated and not freed.
    pub allocated: u64,
    /// Bytes in pages that hold live allocations (allocated, rounded up to
    /// whole pages and size classes).
    pub active: u64,
    /// Resident pages the allocator holds: active, its own metadata, and
    /// free pages not yet handed back.
    pub resident: u64,
    /// Bytes in the allocator's mappings (active and free).
    pub mapped: u64,
    /// Address space kept for reuse but already handed back to the system.
    pub retained: u64,
}

/// The allocator's totals now, or `None` when it does not keep them (a
/// build whose allocator is not jemalloc with statistics).
pub fn stats() -> Option<Stats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The totals are refreshed when the epoch advances.
    epoch::advance().ok()?;
    Some(Stats {
        allocated: stats::allocated::read().ok()? as u64,
        active: stats::active::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
        mapped: stats::mapped::read().ok()? as u64,
        retained: stats::retained::read().ok()? as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_allocation_is_counted_and_its_free_is_seen() {
        // The test binary links jemalloc unprefixed: it is the allocator.
        // Other tests of this binary allocate and free at the same time,
        // so the figures are checked with room for them: the block alone
        // is 256 MiB, far beyond what they hold.
        const BLOCK: u64 = 256 << 20;
        let block = std::hint::black_box(vec![1u8; BLOCK as usize]);
        let during = stats().expect("jemalloc keeps statistics");
        assert!(during.allocated >= BLOCK, "{during:?}");
        assert!(during.resident >= during.active && during.active >= during.allocated);
        drop(block);
        let after = stats().unwrap();
        assert!(
            after.allocated + BLOCK / 2 < during.allocated,
            "{during:?} {after:?}"
        );
    }
}
