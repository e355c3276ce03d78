//! Which slice writes the informer has not shown yet (upstream `endpointslice_tracker.go`).
//!
//! A sync plans from the slice cache. Right after this controller created a slice, the cache
//! may not hold it yet, and a sync planned then would create the same endpoints a second time.
//! So every write is remembered (created or updated: the resourceVersion the API server
//! returned; deleted: gone), and a service whose cached slices are older than what it wrote is
//! not synced until the watch catches up — the slice's own watch event then triggers the sync.
//!
//! Upstream compares `metadata.generation`; skiff's API server does not bump generation on
//! EndpointSlices, so this compares resourceVersions as numbers, which skiff's (etcd
//! revisions) are.

use std::collections::HashMap;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use parking_lot::Mutex;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    AtLeast(u64),
    Gone,
}

#[derive(Default)]
pub struct Tracker {
    /// service uid → slice name → what the cache must show.
    by_service: Mutex<HashMap<String, HashMap<String, Expect>>>,
}

fn version(slice: &EndpointSlice) -> Option<u64> {
    slice.metadata.resource_version.as_deref()?.parse().ok()
}

impl Tracker {
    /// Whether `cached` (the service's slices in the cache) misses one of its writes.
    /// Writes the cache has caught up with are forgotten.
    pub fn stale<'a>(
        &self,
        service_uid: &str,
        cached: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> bool {
        let mut by_service = self.by_service.lock();
        let Some(expected) = by_service.get_mut(service_uid) else {
            return false;
        };
        let cached: HashMap<&str, Option<u64>> = cached
            .into_iter()
            .map(|s| (s.metadata.name.as_deref().unwrap_or_default(), version(s)))
            .collect();
        expected.retain(|name, expect| match (expect, cached.get(name.as_str())) {
            (Expect::Gone, present) => present.is_some(),
            (Expect::AtLeast(_), None) => true,
            (Expect::AtLeast(want), Some(have)) => have.is_some_and(|have| have < *want),
        });
        let stale = !expected.is_empty();
        if !stale {
            by_service.remove(service_uid);
        }
        stale
    }

    /// A create or update answered with `written`.
    pub fn written(&self, service_uid: &str, written: &EndpointSlice) {
        let (Some(name), Some(v)) = (written.metadata.name.clone(), version(written)) else {
            return;
        };
        self.by_service
            .lock()
            .entry(service_uid.to_string())
            .or_default()
            .insert(name, Expect::AtLeast(v));
    }

    pub fn deleted(&self, service_uid: &str, name: &str) {
        self.by_service
            .lock()
            .entry(service_uid.to_string())
            .or_default()
            .insert(name.to_string(), Expect::Gone);
    }

    /// The service is gone.
    pub fn forget(&self, service_uid: &str) {
        self.by_service.lock().remove(service_uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn slice(name: &str, rv: u64) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some(rv.to_string()),
                ..ObjectMeta::default()
            },
            address_type: "IPv4".into(),
            endpoints: None,
            ports: None,
        }
    }

    #[test]
    fn stale_until_the_cache_shows_every_write() {
        let t = Tracker::default();
        assert!(!t.stale("s", []));
        t.written("s", &slice("a", 10));
        assert!(t.stale("s", []));
        assert!(t.stale("s", [&slice("a", 9)]));
        assert!(!t.stale("s", [&slice("a", 10)]));
        t.deleted("s", "a");
        assert!(t.stale("s", [&slice("a", 10)]));
        assert!(!t.stale("s", []));
        t.written("s", &slice("b", 3));
        t.forget("s");
        assert!(!t.stale("s", []));
    }
}
