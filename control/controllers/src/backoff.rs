//! Per-object retry backoff for failed syncs (upstream's rate-limited work queue:
//! exponential per item). kube-runtime's `Controller` retries when `error_policy` says so but
//! keeps no per-object history, so this remembers one kube-runtime `DefaultBackoff`
//! (800 ms doubling to 30 s, jittered) per object until its sync succeeds. A template the API
//! server refuses thus costs a few requests a minute, never a hot loop, and other objects are
//! unaffected.

use std::collections::HashMap;
use std::time::Duration;

use kube::runtime::watcher::DefaultBackoff;
use parking_lot::Mutex;

#[derive(Default)]
pub struct Backoffs {
    by_key: Mutex<HashMap<String, DefaultBackoff>>,
}

const MAX: Duration = Duration::from_secs(30);

impl Backoffs {
    /// The delay before retrying `key` after one more failure.
    pub fn next(&self, key: &str) -> Duration {
        self.by_key
            .lock()
            .entry(key.to_string())
            .or_default()
            .next()
            .unwrap_or(MAX)
    }

    /// `key` synced: its next failure starts from the shortest delay again.
    pub fn reset(&self, key: &str) {
        self.by_key.lock().remove(key);
    }
}
