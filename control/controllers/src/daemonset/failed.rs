//! Backoff for deleting failed daemon pods (upstream `failedPodsBackoff`, client-go's
//! `flowcontrol.Backoff` with 1 s doubling to 15 min), per DaemonSet and node.
//!
//! Why: a kubelet that rejects a daemon pod (no room for a host port, a missing device) fails
//! it at once; deleting and recreating it at once would make the controller and the kubelet
//! fight in a hot loop. Each delete on a node waits twice as long as the previous one; a node
//! quiet for twice the maximum starts over from 1 s.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

const INITIAL: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(15 * 60);

struct Entry {
    delay: Duration,
    last: Instant,
}

#[derive(Default)]
pub struct FailedPods {
    by_key: Mutex<HashMap<String, Entry>>,
}

/// The key of a DaemonSet's node (upstream `failedPodsBackoffKey`).
pub fn key(ds_uid: &str, node: &str) -> String {
    format!("{ds_uid}/{node}")
}

impl FailedPods {
    /// How long `key` must still wait before its next delete, if it must
    /// (upstream `IsInBackOffSinceUpdate`).
    pub fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let map = self.by_key.lock();
        let entry = map.get(key)?;
        let since = now.saturating_duration_since(entry.last);
        if since > MAX * 2 {
            return None;
        }
        entry.delay.checked_sub(since).filter(|d| !d.is_zero())
    }

    /// A delete for `key` happens now: the next one waits longer (upstream `Next`).
    pub fn next(&self, key: &str, now: Instant) {
        let mut map = self.by_key.lock();
        // Drop entries nobody has used for long (upstream's periodic GC).
        map.retain(|_, e| now.saturating_duration_since(e.last) <= MAX * 2);
        let entry = map.entry(key.to_string()).or_insert(Entry {
            delay: INITIAL / 2,
            last: now,
        });
        entry.delay = (entry.delay * 2).min(MAX);
        entry.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_expire() {
        let b = FailedPods::default();
        let t0 = Instant::now();
        let k = key("ds", "n1");
        assert_eq!(b.wait(&k, t0), None);
        b.next(&k, t0);
        assert_eq!(b.wait(&k, t0), Some(Duration::from_secs(1)));
        assert_eq!(b.wait(&k, t0 + Duration::from_secs(1)), None);
        b.next(&k, t0 + Duration::from_secs(1));
        assert_eq!(
            b.wait(&k, t0 + Duration::from_millis(1500)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(b.wait(&key("ds", "n2"), t0), None, "per node");
        // Quiet for long: starts over.
        let later = t0 + MAX * 3;
        assert_eq!(b.wait(&k, later), None);
        b.next(&k, later);
        assert_eq!(b.wait(&k, later), Some(Duration::from_secs(1)));
    }
}
