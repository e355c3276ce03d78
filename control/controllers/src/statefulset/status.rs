//! A StatefulSet's status as upstream computes it (`computeReplicaStatus`, `updateStatus`,
//! `completeRollingUpdate`, `inconsistentStatus`).
//!
//! `kubectl rollout status statefulset/x` waits for `observedGeneration` to reach the
//! generation, then for `readyReplicas` to reach `spec.replicas`, then — with a partition —
//! for `updatedReplicas` ≥ replicas − partition, else for `currentRevision` ==
//! `updateRevision`. So the counts come from the pods, never from the spec:
//! - `replicas`: pods the API server has (made-up pods for missing ordinals do not count);
//! - `readyReplicas`: Running and Ready; `availableReplicas`: also for minReadySeconds;
//! - `currentReplicas` / `updatedReplicas`: pods not terminating at the current / update
//!   revision;
//! - once every pod is updated and ready (RollingUpdate), the update revision becomes the
//!   current one, which is how a rollout ends.
//!
//! Written only when something kubectl reads changed, as upstream.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::control::{is_created, is_on_delete, is_running_and_ready, is_terminating};
use super::identity::revision;
use crate::pods::is_available;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub observed_generation: i64,
    pub replicas: i32,
    pub ready: i32,
    pub available: i32,
    pub current: i32,
    pub updated: i32,
    pub current_revision: String,
    pub update_revision: String,
    pub collision_count: i32,
}

/// The counts over `pods` (upstream `computeReplicaStatus`).
pub fn count(status: &mut Status, pods: &[Arc<Pod>], min_ready_seconds: i32, now: jiff::Timestamp) {
    for pod in pods {
        if !is_created(pod) {
            continue;
        }
        status.replicas += 1;
        if is_running_and_ready(pod) {
            status.ready += 1;
            if is_available(pod, min_ready_seconds, now) {
                status.available += 1;
            }
        }
        if !is_terminating(pod) {
            let r = revision(pod);
            if r == status.current_revision {
                status.current += 1;
            }
            if r == status.update_revision {
                status.updated += 1;
            }
        }
    }
}

/// Upstream `completeRollingUpdate`.
pub fn complete_rolling_update(set: &StatefulSet, status: &mut Status) {
    if !is_on_delete(set) && status.updated == status.replicas && status.ready == status.replicas {
        status.current = status.updated;
        status.current_revision = status.update_revision.clone();
    }
}

/// What the set shows now.
pub fn shown(set: &StatefulSet) -> Status {
    let Some(s) = &set.status else {
        return Status::default();
    };
    Status {
        observed_generation: s.observed_generation.unwrap_or(0),
        replicas: s.replicas,
        ready: s.ready_replicas.unwrap_or(0),
        available: s.available_replicas.unwrap_or(0),
        current: s.current_replicas.unwrap_or(0),
        updated: s.updated_replicas.unwrap_or(0),
        current_revision: s.current_revision.clone().unwrap_or_default(),
        update_revision: s.update_revision.clone().unwrap_or_default(),
        collision_count: s.collision_count.unwrap_or(0),
    }
}

/// The merge patch for the status subresource, or `None` when the set shows it already
/// (upstream `inconsistentStatus`, plus the collision count, which upstream writes along).
pub fn patch(set: &StatefulSet, status: &Status) -> Option<serde_json::Value> {
    let now = shown(set);
    let observed_unset = set
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .is_none();
    let inconsistent = observed_unset
        || status.observed_generation > now.observed_generation
        || Status {
            observed_generation: now.observed_generation,
            ..status.clone()
        } != now;
    inconsistent.then(|| {
        json!({
            "status": {
                "observedGeneration": status.observed_generation,
                "replicas": status.replicas,
                "readyReplicas": status.ready,
                "availableReplicas": status.available,
                "currentReplicas": status.current,
                "updatedReplicas": status.updated,
                "currentRevision": status.current_revision,
                "updateRevision": status.update_revision,
                "collisionCount": status.collision_count,
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statefulset::control::tests::{member, NOW};
    use crate::statefulset::identity::testing::set;
    use k8s_openapi::api::apps::v1::StatefulSetStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn status(current: &str, update: &str) -> Status {
        Status {
            observed_generation: 1,
            current_revision: current.into(),
            update_revision: update.into(),
            ..Status::default()
        }
    }

    #[test]
    fn counts_from_the_pods() {
        let mut s = set("web", 4, None);
        s.spec.min_ready_seconds = Some(10);
        let now = jiff::Timestamp::from_second(NOW).expect("valid");
        let mut terminating = (*member(&s, 3, "Running", true, "new")).clone();
        terminating.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let mut not_yet_available = (*member(&s, 2, "Running", true, "new")).clone();
        if let Some(c) = not_yet_available
            .status
            .as_mut()
            .and_then(|s| s.conditions.as_mut())
        {
            c[0].last_transition_time =
                Some(Time(jiff::Timestamp::from_second(NOW - 5).expect("valid")));
        }
        let template = s.spec.template.clone();
        let made_up = Arc::new(crate::statefulset::identity::new_pod(
            &s, &template, "new", 4,
        ));
        let pods = [
            member(&s, 0, "Running", true, "old"),
            member(&s, 1, "Pending", false, "new"),
            Arc::new(not_yet_available),
            Arc::new(terminating),
            made_up,
        ];
        let mut st = status("old", "new");
        count(&mut st, &pods, 10, now);
        assert_eq!(
            (st.replicas, st.ready, st.available, st.current, st.updated),
            (4, 3, 2, 1, 2)
        );
        // Not every pod updated: the rollout goes on.
        complete_rolling_update(&s, &mut st);
        assert_eq!(st.current_revision, "old");
    }

    #[test]
    fn a_finished_rollout_makes_the_update_revision_current() {
        let s = set("web", 2, None);
        let pods: Vec<_> = (0..2)
            .map(|o| member(&s, o, "Running", true, "new"))
            .collect();
        let mut st = status("old", "new");
        count(
            &mut st,
            &pods,
            0,
            jiff::Timestamp::from_second(NOW).expect("valid"),
        );
        complete_rolling_update(&s, &mut st);
        assert_eq!((st.current, st.current_revision.as_str()), (2, "new"));
    }

    #[test]
    fn written_only_when_changed() {
        let mut s = set("web", 1, None);
        let st = Status {
            replicas: 1,
            ready: 1,
            ..status("a", "a")
        };
        let p = patch(&s, &st).expect("no status yet");
        assert_eq!(p["status"]["observedGeneration"], 1);
        assert_eq!(p["status"]["currentRevision"], "a");
        s.status = Some(StatefulSetStatus {
            observed_generation: Some(1),
            replicas: 1,
            ready_replicas: Some(1),
            available_replicas: Some(0),
            current_replicas: Some(0),
            updated_replicas: Some(0),
            current_revision: Some("a".into()),
            update_revision: Some("a".into()),
            collision_count: Some(0),
            ..StatefulSetStatus::default()
        });
        assert!(patch(&s, &st).is_none());
        assert!(patch(
            &s,
            &Status {
                ready: 0,
                ..st.clone()
            }
        )
        .is_some());
        assert!(patch(
            &s,
            &Status {
                observed_generation: 2,
                ..st
            }
        )
        .is_some());
    }
}
