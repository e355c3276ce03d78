//! Which pods a ReplicaSet deletes first when it scales down (upstream `ActivePodsWithRanks`,
//! 1.32 with PodDeletionCost and LogarithmicScaleDown on). The first rule that tells two pods
//! apart decides:
//!
//! 1. not yet scheduled before scheduled;
//! 2. Pending before Unknown before Running;
//! 3. not ready before ready;
//! 4. lower `controller.kubernetes.io/pod-deletion-cost` first;
//! 5. more pods of the same workload on its node first (spreads what stays);
//! 6. ready more recently first, compared in log2 buckets of age (ties broken by uid, so
//!    repeated scale-downs do not always pick the same "newest" pods);
//! 7. more container restarts first;
//! 8. created more recently first (same log2 buckets).
//!
//! Why this order: it removes the pods that cost the least service — those doing nothing yet,
//! then unhealthy ones, then the ones the user marked cheap — and keeps the workload spread.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::pods::{is_active, is_ready, max_restarts, ready_since};

const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn node(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        // Upstream's table has no other phases (active pods are never finished).
        Some(_) => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `floor(log2(now − t))` in nanoseconds, −1 for times not in the past (upstream's buckets).
fn log_bucket(t: Option<jiff::Timestamp>, now: jiff::Timestamp) -> i64 {
    let Some(t) = t else { return -1 };
    let age = now.duration_since(t).as_nanos();
    if age <= 0 {
        -1
    } else {
        (age as f64).log2() as i64
    }
}

/// Upstream's `afterOrZero`: a missing time sorts first, else the later time first.
fn after_or_zero(a: Option<jiff::Timestamp>, b: Option<jiff::Timestamp>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

/// Newer first by log2 age bucket, ties by uid (LogarithmicScaleDown).
fn by_age(
    a: Option<jiff::Timestamp>,
    b: Option<jiff::Timestamp>,
    pa: &Pod,
    pb: &Pod,
    now: jiff::Timestamp,
) -> Ordering {
    if a.is_none() || b.is_none() {
        return after_or_zero(a, b);
    }
    let diff = log_bucket(a, now) - log_bucket(b, now);
    if diff == 0 {
        uid(pa).cmp(uid(pb))
    } else {
        diff.cmp(&0)
    }
}

/// `Less` when `a` should be deleted before `b`.
fn compare(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: jiff::Timestamp) -> Ordering {
    let (na, nb) = (node(a), node(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return if na.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let phase = phase_rank(a).cmp(&phase_rank(b));
    if phase != Ordering::Equal {
        return phase;
    }
    let (ready_a, ready_b) = (is_ready(a), is_ready(b));
    if ready_a != ready_b {
        return if ready_a {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    let cost = deletion_cost(a).cmp(&deletion_cost(b));
    if cost != Ordering::Equal {
        return cost;
    }
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    if ready_a && ready_b {
        let (ta, tb) = (ready_since(a).flatten(), ready_since(b).flatten());
        if ta != tb {
            return by_age(ta, tb, a, b, now);
        }
    }
    let restarts = max_restarts(b).cmp(&max_restarts(a));
    if restarts != Ordering::Equal {
        return restarts;
    }
    let (ca, cb) = (
        a.metadata.creation_timestamp.as_ref().map(|t| t.0),
        b.metadata.creation_timestamp.as_ref().map(|t| t.0),
    );
    if ca != cb {
        return by_age(ca, cb, a, b, now);
    }
    Ordering::Equal
}

/// The `count` pods of `pods` to delete, in order. `related` are the active pods of the whole
/// workload (this ReplicaSet and its siblings under the same Deployment), which rank a pod by
/// how many of them share its node.
pub fn choose(
    pods: &[Arc<Pod>],
    related: &[Arc<Pod>],
    count: usize,
    now: jiff::Timestamp,
) -> Vec<Arc<Pod>> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related.iter().filter(|p| is_active(p)) {
        *on_node.entry(node(p)).or_default() += 1;
    }
    let mut ranked: Vec<(Arc<Pod>, usize)> = pods
        .iter()
        .map(|p| (p.clone(), on_node.get(node(p)).copied().unwrap_or(0)))
        .collect();
    ranked.sort_by(|(a, ra), (b, rb)| compare(a, *ra, b, *rb, now));
    ranked.into_iter().take(count).map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::testing::pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    fn now() -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_000_000).expect("valid")
    }

    #[test]
    fn upstream_order() {
        let mut restarted = pod("restarted", "n1", "Running", Some(1_000));
        restarted
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut())
            .expect("has statuses")[0]
            .restart_count = 3;
        let mut cheap = pod("cheap", "n3", "Running", Some(1_000));
        cheap.metadata.annotations = Some([(DELETION_COST.to_string(), "-5".to_string())].into());
        let pods: Vec<Arc<Pod>> = vec![
            pod("old-ready", "n1", "Running", Some(1_000)),
            pod("running-not-ready", "n1", "Running", None),
            pod("unknown", "n1", "Unknown", None),
            pod("pending", "n1", "Pending", None),
            pod("unassigned", "", "Pending", None),
            pod("new-ready", "n2", "Running", Some(999_990)),
            restarted,
            cheap,
        ]
        .into_iter()
        .map(Arc::new)
        .collect();
        let order = choose(&pods, &pods, pods.len(), now());
        assert_eq!(
            names(&order),
            [
                "unassigned",
                "pending",
                "unknown",
                "running-not-ready",
                "cheap",
                // n1 holds 5 pods of the workload, n2 one: doubled-up pods go first; among
                // the n1 pods ready at the same time, more restarts first.
                "restarted",
                "old-ready",
                "new-ready",
            ]
        );
    }

    #[test]
    fn more_recently_ready_goes_first_and_creation_breaks_ties() {
        let a = pod("ready-long-ago", "n1", "Running", Some(10));
        let b = pod("ready-just-now", "n2", "Running", Some(999_999));
        let mut c = pod("young", "n3", "Running", Some(10));
        c.metadata.creation_timestamp = Some(Time(now()));
        let pods: Vec<Arc<Pod>> = vec![a, b, c].into_iter().map(Arc::new).collect();
        assert_eq!(
            names(&choose(&pods, &pods, 2, now())),
            ["ready-just-now", "young"]
        );
    }
}
