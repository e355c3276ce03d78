//! A ReplicaSet's (or ReplicationController's) status as upstream computes it
//! (`replica_set_utils.go` calculateStatus): counts over the active pods it owns, the
//! generation observed, and the `ReplicaFailure` condition while creating or deleting fails.
//!
//! The Deployment controller and `kubectl rollout status` read these counters, so they must be
//! exact: `availableReplicas` honours minReadySeconds, `observedGeneration` is the generation
//! this sync acted on.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::pods::{is_available, is_ready};

pub const REPLICA_FAILURE: &str = "ReplicaFailure";

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaStatus {
    pub replicas: i32,
    pub fully_labeled: i32,
    pub ready: i32,
    pub available: i32,
    pub observed_generation: i64,
    /// Conditions other than ReplicaFailure are kept as they are.
    pub conditions: Vec<Condition>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Option<Time>,
}

/// Why the last attempt to create or delete pods failed.
pub struct ManageFailure {
    pub message: String,
}

/// What of the spec the status depends on.
pub struct Spec<'a> {
    pub generation: i64,
    pub desired: i32,
    pub template_labels: Option<&'a BTreeMap<String, String>>,
    pub min_ready_seconds: i32,
}

/// The status after a sync that saw `pods` (active, owned).
pub fn calculate(
    current: &ReplicaStatus,
    spec: &Spec<'_>,
    pods: &[Arc<Pod>],
    failure: Option<&ManageFailure>,
    now: jiff::Timestamp,
) -> ReplicaStatus {
    let mut status = ReplicaStatus {
        replicas: pods.len() as i32,
        observed_generation: spec.generation,
        conditions: current.conditions.clone(),
        ..ReplicaStatus::default()
    };
    for pod in pods {
        let labels = pod.metadata.labels.as_ref();
        let fully = spec
            .template_labels
            .into_iter()
            .flatten()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
        if fully {
            status.fully_labeled += 1;
        }
        if is_ready(pod) {
            status.ready += 1;
            if is_available(pod, spec.min_ready_seconds, now) {
                status.available += 1;
            }
        }
    }
    let existing = status.conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match failure {
        Some(failure) if !existing => {
            let reason = if (pods.len() as i32) < spec.desired {
                "FailedCreate"
            } else {
                "FailedDelete"
            };
            status.conditions.push(Condition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(failure.message.clone()),
                last_transition_time: Some(Time(now)),
            });
        }
        None if existing => status.conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        _ => {}
    }
    status
}

/// The merge patch writing `status` through the status subresource (same field names on
/// ReplicaSets and ReplicationControllers).
pub fn patch(status: &ReplicaStatus) -> serde_json::Value {
    let conditions: Vec<serde_json::Value> = status
        .conditions
        .iter()
        .map(|c| {
            serde_json::json!({
                "type": c.type_,
                "status": c.status,
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": c.last_transition_time,
            })
        })
        .collect();
    serde_json::json!({
        "status": {
            "replicas": status.replicas,
            "fullyLabeledReplicas": status.fully_labeled,
            "readyReplicas": status.ready,
            "availableReplicas": status.available,
            "observedGeneration": status.observed_generation,
            "conditions": if conditions.is_empty() { serde_json::Value::Null } else { conditions.into() },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::testing::pod;

    #[test]
    fn counts_and_failure_condition() {
        let now = jiff::Timestamp::from_second(100).expect("valid");
        let mut labelled = pod("a", "n1", "Running", Some(50));
        labelled.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        let pods: Vec<Arc<Pod>> = vec![
            labelled,
            pod("b", "n1", "Running", Some(95)),
            pod("c", "n1", "Pending", None),
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let failure = ManageFailure {
            message: "quota exceeded".into(),
        };
        let spec = Spec {
            generation: 4,
            desired: 5,
            template_labels: Some(&labels),
            min_ready_seconds: 10,
        };
        let s = calculate(&ReplicaStatus::default(), &spec, &pods, Some(&failure), now);
        assert_eq!(
            (s.replicas, s.fully_labeled, s.ready, s.available),
            (3, 1, 2, 1)
        );
        assert_eq!(s.observed_generation, 4);
        assert_eq!(s.conditions[0].reason.as_deref(), Some("FailedCreate"));
        // A later sync without failure drops the condition.
        let cleared = calculate(&s, &spec, &pods, None, now);
        assert!(cleared.conditions.is_empty());
    }
}
