//! The `endpoints.kubernetes.io/last-change-trigger-time` annotation (upstream
//! `pkg/controller/util/endpoint/trigger_time_tracker.go`): when the change that an Endpoints
//! or EndpointSlice write reflects happened, so the network programming latency SLI can be
//! measured from it.
//!
//! A pod's trigger time is when its Ready condition last changed (a change of its status within
//! the same second counts too); a service's is its creation.
//! For one sync the annotation is the earliest trigger time among the pods and the service
//! that changed since the previous sync of that service — the oldest change still waiting to
//! be published. Nothing changed (a resync, a deleted pod): no time, and the writer drops the
//! annotation as upstream does. The state moves on only when the sync succeeded, so a retried
//! write still carries its trigger time.

use std::collections::HashMap;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service};
use parking_lot::Mutex;

pub const ANNOTATION: &str = "endpoints.kubernetes.io/last-change-trigger-time";

#[derive(Default)]
struct State {
    /// pod → its Ready condition's (lastTransitionTime, status) at the last sync.
    pods: HashMap<String, (Timestamp, bool)>,
    service: Option<Timestamp>,
}

#[derive(Default)]
pub struct Tracker {
    services: Mutex<HashMap<(String, String), State>>,
}

/// The pod's Ready condition: when it last changed, and whether it is True.
fn pod_time(pod: &Pod) -> Option<(Timestamp, bool)> {
    let ready = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    Some((
        ready.last_transition_time.as_ref()?.0,
        ready.status == "True",
    ))
}

/// The annotation's value: RFC 3339 in UTC with nanoseconds, as Go's `time.RFC3339Nano`.
pub fn format(t: Timestamp) -> String {
    t.to_string()
}

/// What one sync saw; [`Tracker::commit`] it once the sync has written (a failed write keeps
/// the old state, so its retry still carries the trigger time).
pub struct Seen {
    key: (String, String),
    pods: HashMap<String, (Timestamp, bool)>,
    service: Option<Timestamp>,
}

impl Tracker {
    /// The trigger time of a sync of `service` over `pods` (the pods its selector matches).
    pub fn compute<'a>(
        &self,
        service: &Service,
        pods: impl IntoIterator<Item = &'a Pod>,
    ) -> (Option<Timestamp>, Seen) {
        let key = (
            service.metadata.namespace.clone().unwrap_or_default(),
            service.metadata.name.clone().unwrap_or_default(),
        );
        let services = self.services.lock();
        let empty = State::default();
        let state = services.get(&key).unwrap_or(&empty);
        let mut earliest: Option<Timestamp> = None;
        let mut seen = HashMap::new();
        for pod in pods {
            let Some((t, ready)) = pod_time(pod) else {
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            // Transition times have whole seconds: a pod that turns Ready within the second
            // its condition was first written keeps the time but changes the status.
            if state
                .pods
                .get(&name)
                .is_none_or(|(last, was)| t > *last || ready != *was)
            {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
            seen.insert(name, (t, ready));
        }
        let created = service.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(t) = created {
            if state.service.is_none_or(|last| t > last) {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        }
        (
            earliest,
            Seen {
                key,
                pods: seen,
                service: created,
            },
        )
    }

    /// The sync that saw `seen` is done.
    pub fn commit(&self, seen: Seen) {
        self.services.lock().insert(
            seen.key,
            State {
                pods: seen.pods,
                service: seen.service,
            },
        );
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
        let compute = |svc: &Service, pods: &[&Pod]| {
            let (t, seen) = tracker.compute(svc, pods.iter().copied());
            tracker.commit(seen);
            t
        };
        let mut svc = service("web", &[]);
        svc.metadata.creation_timestamp = Some(Time(Timestamp::from_second(100).unwrap()));
        let mut a = pod("a", "10.0.0.1", "n", true, &[]);
        at(&mut a, 110);
        let mut b = pod("b", "10.0.0.2", "n", true, &[]);
        at(&mut b, 120);
        // First sync: the service's creation is the oldest change.
        assert_eq!(
            compute(&svc, &[&a, &b]),
            Some(Timestamp::from_second(100).unwrap())
        );
        // Nothing changed: no trigger time.
        assert_eq!(compute(&svc, &[&a, &b]), None);
        // b turned ready again at 130: that is the trigger.
        at(&mut b, 130);
        assert_eq!(
            compute(&svc, &[&a, &b]),
            Some(Timestamp::from_second(130).unwrap())
        );
        // a deleted: no trigger time (upstream cannot date a deletion either).
        assert_eq!(compute(&svc, &[&b]), None);
        // A sync whose write failed commits nothing: the retry still has the trigger time.
        at(&mut b, 140);
        let (t, _) = tracker.compute(&svc, [&b]);
        assert_eq!(t, Some(Timestamp::from_second(140).unwrap()));
        assert_eq!(
            compute(&svc, &[&b]),
            Some(Timestamp::from_second(140).unwrap())
        );
        // Turned not ready within the same second: still a change.
        b.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
        assert_eq!(
            compute(&svc, &[&b]),
            Some(Timestamp::from_second(140).unwrap())
        );
        assert_eq!(compute(&svc, &[&b]), None);
        assert_eq!(
            format(Timestamp::from_second(130).unwrap()),
            "1970-01-01T00:02:10Z"
        );
    }
}
