//! The `endpoints.kubernetes.io/last-change-trigger-time` annotation (upstream
//! `pkg/controller/util/endpoint/trigger_time_tracker.go`): when the change that an Endpoints
//! or EndpointSlice write reflects happened, so the network programming latency SLI can be
//! measured from it.
//!
//! A pod's trigger time is when its Ready condition last changed; a service's is its creation.
//! For one sync the annotation is the earliest trigger time among the pods and the service
//! that changed since the previous sync of that service — the oldest change still waiting to
//! be published. Nothing changed (a resync, a deleted pod): no time, and the writer drops the
//! annotation as upstream does.

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service};
use parking_lot::Mutex;

pub const ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

#[derive(Default)]
struct State {
    pods: HashMap<String, Timestamp>,
    service: Option<Timestamp>,
}

#[derive(Default)]
pub struct Tracker {
    services: Mutex<HashMap<(String, String), State>>,
}

fn pod_time(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// The annotation's value: RFC 3339 in UTC with nanoseconds, as Go's `time.RFC3339Nano`.
pub fn format(t: Timestamp) -> String {
    t.to_string()
}

impl Tracker {
    /// The trigger time of a sync of `service` over `pods` (the pods its selector matches), and
    /// remembers what this sync saw.
    pub fn compute<'a>(
        &self,
        service: &Service,
        pods: impl IntoIterator<Item = &'a Pod>,
    ) -> Option<Timestamp> {
        let key = (
            service.metadata.namespace.clone().unwrap_or_default(),
            service.metadata.name.clone().unwrap_or_default(),
        );
        let mut services = self.services.lock();
        let state = services.entry(key).or_default();
        let mut earliest: Option<Timestamp> = None;
        let mut seen = HashMap::new();
        for pod in pods {
            let Some(t) = pod_time(pod) else { continue };
            let name = pod.metadata.name.clone().unwrap_or_default();
            if state.pods.get(&name).is_none_or(|last| t > *last) {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
            seen.insert(name, t);
        }
        let created = service.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(t) = created {
            if state.service.is_none_or(|last| t > last) {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        }
        state.pods = seen;
        state.service = created;
        earliest
    }

    /// The service is gone: forget it.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.services
            .lock()
            .remove(&(namespace.to_string(), name.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_pods::testing::{pod, service};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(pod: &mut Pod, second: i64) {
        pod.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_transition_time =
            Some(Time(Timestamp::from_second(second).unwrap()));
    }

    #[test]
    fn earliest_change_since_the_last_sync() {
        let tracker = Tracker::default();
        let mut svc = service("web", &[]);
        svc.metadata.creation_timestamp = Some(Time(Timestamp::from_second(100).unwrap()));
        let mut a = pod("a", "10.0.0.1", "n", true, &[]);
        at(&mut a, 110);
        let mut b = pod("b", "10.0.0.2", "n", true, &[]);
        at(&mut b, 120);
        // First sync: the service's creation is the oldest change.
        assert_eq!(
            tracker.compute(&svc, [&a, &b]),
            Some(Timestamp::from_second(100).unwrap())
        );
        // Nothing changed: no trigger time.
        assert_eq!(tracker.compute(&svc, [&a, &b]), None);
        // b turned ready again at 130: that is the trigger.
        at(&mut b, 130);
        assert_eq!(
            tracker.compute(&svc, [&a, &b]),
            Some(Timestamp::from_second(130).unwrap())
        );
        // a deleted: no trigger time (upstream cannot date a deletion either).
        assert_eq!(tracker.compute(&svc, [&b]), None);
        assert_eq!(
            format(Timestamp::from_second(130).unwrap()),
            "1970-01-01T00:02:10Z"
        );
    }
}
