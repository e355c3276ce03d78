//! An expiring map for the kubelet API's authentication and authorization answers (upstream
//! caches both: the token authenticator's `cache.New`, the webhook authorizer's response
//! cache), so a `kubectl logs -f` or a metrics scrape does not cost a review per request.
//!
//! Each entry carries its own time to live (a yes lasts longer than a no). The map is bounded:
//! when it is full, expired entries go first, and if it is still full it starts over — the
//! next requests simply ask the API server again.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct TtlCache<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    capacity: usize,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub fn new(capacity: usize) -> TtlCache<K, V> {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The value stored for `key`, unless it expired by `now`.
    pub fn get(&self, key: &K, now: Instant) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(_, expires)| now < *expires)
            .map(|(value, _)| value.clone())
    }

    /// Stores `value` for `key` until `now + ttl`.
    pub fn insert(&self, key: K, value: V, ttl: Duration, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            entries.retain(|_, (_, expires)| now < *expires);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (value, now + ttl));
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_on_their_own_ttl() {
        let cache = TtlCache::new(10);
        let t0 = Instant::now();
        cache.insert("yes", true, Duration::from_secs(300), t0);
        cache.insert("no", false, Duration::from_secs(30), t0);
        assert_eq!(cache.get(&"yes", t0), Some(true));
        assert_eq!(cache.get(&"no", t0 + Duration::from_secs(29)), Some(false));
        assert_eq!(cache.get(&"no", t0 + Duration::from_secs(30)), None);
        assert_eq!(cache.get(&"yes", t0 + Duration::from_secs(299)), Some(true));
        assert_eq!(cache.get(&"yes", t0 + Duration::from_secs(300)), None);
        assert_eq!(cache.get(&"other", t0), None);
        // A new answer replaces the old one.
        cache.insert(
            "no",
            true,
            Duration::from_secs(300),
            t0 + Duration::from_secs(40),
        );
        assert_eq!(cache.get(&"no", t0 + Duration::from_secs(41)), Some(true));
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_starts_over() {
        let cache = TtlCache::new(3);
        let t0 = Instant::now();
        cache.insert(1, (), Duration::from_secs(1), t0);
        cache.insert(2, (), Duration::from_secs(100), t0);
        cache.insert(3, (), Duration::from_secs(100), t0);
        // Full: the expired entry makes room.
        cache.insert(4, (), Duration::from_secs(100), t0 + Duration::from_secs(2));
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&2, t0).is_some() && cache.get(&4, t0).is_some());
        // Full of live entries: it starts over.
        cache.insert(5, (), Duration::from_secs(100), t0 + Duration::from_secs(3));
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&5, t0).is_some());
    }
}
