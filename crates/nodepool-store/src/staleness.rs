//! The staleness guard of [`TreeCache`](crate::TreeCache): a cheap, periodic comparison of
//! the cache with the store, so that a cache that stopped following its subtree (a watch
//! lost on a reconnect, as issue 15 found) is noticed, logged as an ERROR, counted, and
//! repaired, instead of leaving every loop that reads it idle for good.
//!
//! Each round reads two stats: the cache's root (its direct children's count and child
//! version) and one cached znode, taken in turn through the whole subtree. A cache may lag
//! the store by the events in flight, so nothing is judged on one reading: the store's
//! answer at one moment is a fact the cache must show (or have moved past) a grace period
//! later. Only then is the cache stale. Every rule here is monotone (the cache must be at
//! least as new as the store was), so a busy subtree never makes a current cache look stale.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::backend::Stat;

/// How often a cache is compared with the store by default: two stat reads per round.
pub const DEFAULT_AUDIT_INTERVAL: Duration = Duration::from_secs(10);

/// How long a difference may last before it counts: events in flight are applied within
/// milliseconds, even under load.
pub const DEFAULT_AUDIT_GRACE: Duration = Duration::from_secs(10);

/// Whether a cache entry (`cached`, `None`: not cached) is older than the store's znode was
/// when it was read (`stored`, `None`: absent). A cache at least as new as that reading, or
/// one that moved past it (dropped the znode, or holds a later creation), is not behind.
pub fn entry_behind(stored: Option<&Stat>, cached: Option<&Stat>) -> bool {
    match (stored, cached) {
        // Gone from the store, still cached.
        (None, Some(_)) => true,
        // The cache dropped it: whatever the store said then, the cache moved on.
        (_, None) => false,
        (Some(stored), Some(cached)) => {
            if cached.czxid != stored.czxid {
                // Deleted and created again: the cache must hold the newer creation.
                cached.czxid < stored.czxid
            } else {
                cached.version < stored.version
            }
        }
    }
}

/// Whether the cache's count of the root's direct children disagrees with a store that did
/// not change the root's children between two readings (`before`, `after`). A child created
/// in between moves `cversion`, one deleted moves `num_children`; either makes the check
/// inconclusive (not behind).
pub fn children_behind(before: &Stat, after: &Stat, cached_children: usize) -> bool {
    let settled = before.cversion == after.cversion && before.num_children == after.num_children;
    settled && usize::try_from(before.num_children).ok() != Some(cached_children)
}

/// How many times each cache root (in this process) was found behind the store and re-read.
static STALE_COUNTS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// Lists a guarded cache's root with a count of 0, so `/metrics` shows every guarded cache.
pub(crate) fn track(root: &str) {
    let mut counts = STALE_COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    counts.entry(root.to_string()).or_default();
}

pub(crate) fn count_stale(root: &str) {
    let mut counts = STALE_COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    *counts.entry(root.to_string()).or_default() += 1;
}

/// `(cache root, times found stale)` for every guarded cache this process started, for
/// `/metrics`.
pub fn stale_counts() -> Vec<(String, u64)> {
    let counts = STALE_COUNTS.lock().unwrap_or_else(|e| e.into_inner());
    counts.iter().map(|(root, n)| (root.clone(), *n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(czxid: i64, version: i32) -> Stat {
        Stat {
            czxid,
            version,
            ..Stat::default()
        }
    }

    fn children(cversion: i32, num_children: i32) -> Stat {
        Stat {
            cversion,
            num_children,
            ..Stat::default()
        }
    }

    #[test]
    fn an_entry_is_behind_only_when_older_than_the_store_was() {
        // Same creation: the data version decides.
        assert!(entry_behind(Some(&stat(5, 3)), Some(&stat(5, 2))));
        assert!(!entry_behind(Some(&stat(5, 3)), Some(&stat(5, 3))));
        assert!(
            !entry_behind(Some(&stat(5, 3)), Some(&stat(5, 4))),
            "a cache that moved past the reading is current"
        );
        // Deleted in the store, still cached.
        assert!(entry_behind(None, Some(&stat(5, 0))));
        // Dropped by the cache: it moved on (a delete it saw, newer than the reading).
        assert!(!entry_behind(Some(&stat(5, 3)), None));
        assert!(!entry_behind(None, None));
        // Created again: the cache must hold the newer creation.
        assert!(entry_behind(Some(&stat(9, 0)), Some(&stat(5, 7))));
        assert!(!entry_behind(Some(&stat(5, 7)), Some(&stat(9, 0))));
    }

    #[test]
    fn children_are_judged_only_when_the_store_held_still() {
        let before = children(10, 4);
        assert!(children_behind(&before, &children(10, 4), 3));
        assert!(!children_behind(&before, &children(10, 4), 4));
        assert!(
            !children_behind(&before, &children(11, 5), 3),
            "a create in between makes it inconclusive"
        );
        assert!(
            !children_behind(&before, &children(10, 3), 3),
            "so does a delete"
        );
    }
}
