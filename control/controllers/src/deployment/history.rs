//! Revisions (upstream `deployment_util.go` SetNewReplicaSetAnnotations and friends): what
//! `kubectl rollout history` and `rollout undo` read.
//!
//! - every ReplicaSet carries `deployment.kubernetes.io/revision`; the new one gets the highest
//!   old revision + 1. A ReplicaSet brought back by a rollback gets the new number and keeps its
//!   old ones in `deployment.kubernetes.io/revision-history`;
//! - the Deployment carries the revision of its new ReplicaSet;
//! - the Deployment's other annotations (`kubernetes.io/change-cause` among them) are copied
//!   onto the new ReplicaSet, except kubectl's last-applied configuration and the controller's
//!   own annotations;
//! - `desired-replicas` and `max-replicas` record the size the Deployment had when the
//!   ReplicaSet was last scaled, for proportional scaling in the middle of a rollout.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::util;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// Upstream's limit on the revision-history annotation.
const REVISION_HISTORY_LIMIT_CHARS: usize = 2000;

fn skip_copy(key: &str) -> bool {
    [
        LAST_APPLIED,
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        ROLLBACK_TO,
    ]
    .contains(&key)
}

pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn max_revision(list: &[ReplicaSet]) -> i64 {
    list.iter().map(revision).max().unwrap_or(0)
}

/// Copies the Deployment's annotations onto the ReplicaSet; true if anything changed.
fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    let target = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy(k) || target.get(k) == Some(v) {
            continue;
        }
        target.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Sets desired-/max-replicas; true if they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.to_string(), value);
            changed = true;
        }
    }
    changed
}

/// Upstream `SetNewReplicaSetAnnotations`; true if anything changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old = annotations.get(REVISION).cloned();
    let old_number: i64 = old.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0);
    if old_number < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        // A ReplicaSet coming back (a rollback) keeps its earlier revision numbers.
        if let Some(old) = old.filter(|o| !o.is_empty()) {
            let history = annotations
                .get(REVISION_HISTORY)
                .cloned()
                .unwrap_or_default();
            if history.is_empty() {
                annotations.insert(REVISION_HISTORY.into(), old);
            } else {
                let mut entries: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > REVISION_HISTORY_LIMIT_CHARS && start < entries.len() {
                    total -= entries[start].len() + 1;
                    start += 1;
                }
                if total <= REVISION_HISTORY_LIMIT_CHARS {
                    entries = entries.split_off(start);
                    entries.push(&old);
                    let joined = entries.join(",");
                    annotations.insert(REVISION_HISTORY.into(), joined);
                }
            }
        }
    }
    if !exists
        && set_replicas_annotations(
            rs,
            util::replicas(d),
            util::replicas(d) + util::max_surge(d),
        )
    {
        changed = true;
    }
    changed
}

/// Puts `revision` on the Deployment; true if it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let annotations = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if annotations.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION.into(), revision.into());
    true
}

pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(DESIRED_REPLICAS)?
        .parse()
        .ok()
}

pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    rs.metadata
        .annotations
        .as_ref()?
        .get(MAX_REPLICAS)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deployment() -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                annotations: Some(
                    [
                        ("kubernetes.io/change-cause".to_string(), "v2".to_string()),
                        (LAST_APPLIED.to_string(), "{}".to_string()),
                        (REVISION.to_string(), "1".to_string()),
                    ]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            ..Deployment::default()
        }
    }

    #[test]
    fn new_replica_set_gets_revision_and_copied_annotations() {
        let mut rs = ReplicaSet::default();
        assert!(set_new_rs_annotations(&deployment(), &mut rs, 2, false));
        let a = rs.metadata.annotations.as_ref().expect("annotations");
        assert_eq!(a.get(REVISION).map(String::as_str), Some("2"));
        assert_eq!(
            a.get("kubernetes.io/change-cause").map(String::as_str),
            Some("v2")
        );
        assert!(!a.contains_key(LAST_APPLIED));
        // Defaults: 1 replica, 25 % surge → 1.
        assert_eq!(a.get(DESIRED_REPLICAS).map(String::as_str), Some("1"));
        assert_eq!(a.get(MAX_REPLICAS).map(String::as_str), Some("2"));
        assert!(!set_new_rs_annotations(&deployment(), &mut rs, 2, true));
    }

    #[test]
    fn rollback_keeps_the_old_revision_in_history() {
        let mut rs = ReplicaSet::default();
        set_new_rs_annotations(&deployment(), &mut rs, 1, false);
        set_new_rs_annotations(&deployment(), &mut rs, 3, true);
        set_new_rs_annotations(&deployment(), &mut rs, 5, true);
        let a = rs.metadata.annotations.as_ref().expect("annotations");
        assert_eq!(a.get(REVISION).map(String::as_str), Some("5"));
        assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("1,3"));
    }
}
