//! The update strategies (upstream `updateStatefulSet`'s tail; the `MaxUnavailableStatefulSet`
//! gate is alpha and off in 1.32, so at most one pod is down for an update).
//!
//! - **RollingUpdate**: from the highest ordinal down to `partition`, the first pod not at the
//!   update revision is deleted (the walk in `control.rs` recreates it at the update revision
//!   next sync); an updated pod that is not yet available (Running, Ready, minReadySeconds)
//!   stops the step, so one pod at a time is replaced. Ordinals below the partition stay at the
//!   current revision — a canary, or a staged rollout by lowering the partition.
//! - **OnDelete**: nothing here; a pod someone deletes comes back at the update revision.
//!
//! Why deleting rather than patching: a pod's spec is mostly immutable, and a StatefulSet pod
//! must keep its name, so the only way to a new template is a new pod of the same name.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;

use super::control::{is_on_delete, is_terminating, is_unavailable, min_ready_seconds, partition};
use super::identity::revision;

/// The pod to delete for the rolling update, if any (`replicas` by ordinal, ascending).
pub fn rolling_target(
    set: &StatefulSet,
    replicas: &[Arc<Pod>],
    update_revision: &str,
    now: jiff::Timestamp,
) -> Option<Arc<Pod>> {
    if is_on_delete(set) {
        return None;
    }
    let min = partition(set).max(0) as usize;
    for pod in replicas.iter().skip(min).rev() {
        if revision(pod) != update_revision && !is_terminating(pod) {
            return Some(pod.clone());
        }
        if is_unavailable(pod, min_ready_seconds(set), now) {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statefulset::control::tests::{member, NOW};
    use crate::statefulset::identity::testing::set;
    use k8s_openapi::api::apps::v1::{RollingUpdateStatefulSetStrategy, StatefulSetUpdateStrategy};

    fn with_partition(replicas: i32, partition: i32) -> StatefulSet {
        let mut s = set("web", replicas, None);
        s.spec.update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateStatefulSetStrategy {
                partition: Some(partition),
                max_unavailable: None,
            }),
        });
        s
    }

    fn target(s: &StatefulSet, pods: &[Arc<Pod>]) -> Option<String> {
        let now = jiff::Timestamp::from_second(NOW).expect("valid");
        rolling_target(s, pods, "new", now).and_then(|p| p.metadata.name.clone())
    }

    #[test]
    fn highest_ordinal_first_one_at_a_time() {
        let s = with_partition(3, 0);
        let old: Vec<_> = (0..3)
            .map(|o| member(&s, o, "Running", true, "old"))
            .collect();
        assert_eq!(target(&s, &old).as_deref(), Some("web-2"));

        // web-2 updated but not ready yet: wait.
        let waiting = [
            old[0].clone(),
            old[1].clone(),
            member(&s, 2, "Running", false, "new"),
        ];
        assert_eq!(target(&s, &waiting), None);

        // web-2 updated and ready: web-1 next.
        let next = [
            old[0].clone(),
            old[1].clone(),
            member(&s, 2, "Running", true, "new"),
        ];
        assert_eq!(target(&s, &next).as_deref(), Some("web-1"));

        // All updated: done.
        let done: Vec<_> = (0..3)
            .map(|o| member(&s, o, "Running", true, "new"))
            .collect();
        assert_eq!(target(&s, &done), None);
    }

    #[test]
    fn partition_keeps_lower_ordinals() {
        let s = with_partition(3, 1);
        let pods = [
            member(&s, 0, "Running", true, "old"),
            member(&s, 1, "Running", true, "new"),
            member(&s, 2, "Running", true, "new"),
        ];
        assert_eq!(target(&s, &pods), None, "web-0 is below the partition");
        let s = with_partition(3, 0);
        assert_eq!(target(&s, &pods).as_deref(), Some("web-0"));
        let s = with_partition(3, 5);
        assert_eq!(
            target(&s, &pods),
            None,
            "a partition above the replicas updates nothing"
        );
    }

    #[test]
    fn on_delete_updates_nothing() {
        let mut s = set("web", 2, None);
        s.spec.update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some("OnDelete".into()),
            rolling_update: None,
        });
        let old: Vec<_> = (0..2)
            .map(|o| member(&s, o, "Running", true, "old"))
            .collect();
        assert_eq!(target(&s, &old), None);
    }
}
