//! A DaemonSet's status as upstream computes it (`updateDaemonSetStatus`,
//! `storeDaemonSetStatus`): per node that should run the pod — desired, current (has one),
//! ready, available (ready for minReadySeconds), updated (the oldest pod there is up to date);
//! per node that should not — misscheduled (has one anyway).
//!
//! `kubectl rollout status daemonset/x` waits for `observedGeneration` ≥ `generation`, then for
//! `updatedNumberScheduled` and `numberAvailable` to reach `desiredNumberScheduled`; so the
//! counts come from the pods, never from the spec. The status is written only when something
//! changed, and `observedGeneration` only rises after a sync that was free to act (expectations
//! met), as upstream.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};

use super::nodes::Fit;
use super::pod::is_updated;
use crate::pods::{is_available, is_ready};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub desired: i32,
    pub current: i32,
    pub misscheduled: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
    pub unavailable: i32,
}

/// Scheduled pods first, then oldest first, ties by name (upstream
/// `podByCreationTimestampAndPhase`).
pub fn by_creation_and_phase(a: &Arc<Pod>, b: &Arc<Pod>) -> Ordering {
    let bound = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    bound(b)
        .cmp(&bound(a))
        .then_with(|| created(a).cmp(&created(b)))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// What the counts depend on besides nodes and pods.
pub struct Input<'a> {
    pub hash: &'a str,
    pub generation: Option<i64>,
    pub min_ready_seconds: i32,
    pub now: jiff::Timestamp,
}

/// The counts over `nodes`, with `fit` deciding where the pod belongs.
pub fn calculate(
    nodes: &[Arc<Node>],
    fit: impl Fn(&Node) -> Fit,
    by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
    input: &Input<'_>,
) -> Counts {
    let mut c = Counts::default();
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let pods = by_node.get(name).map(Vec::as_slice).unwrap_or_default();
        let scheduled = !pods.is_empty();
        if !fit(node).should_run {
            if scheduled {
                c.misscheduled += 1;
            }
            continue;
        }
        c.desired += 1;
        if !scheduled {
            continue;
        }
        c.current += 1;
        let mut sorted = pods.to_vec();
        sorted.sort_by(by_creation_and_phase);
        let pod = &sorted[0];
        if is_ready(pod) {
            c.ready += 1;
            if is_available(pod, input.min_ready_seconds, input.now) {
                c.available += 1;
            }
        }
        if is_updated(pod, input.hash, input.generation) {
            c.updated += 1;
        }
    }
    c.unavailable = c.desired - c.available;
    c
}

/// The counts and observed generation the DaemonSet shows now.
pub fn current(ds: &DaemonSet) -> (Counts, i64) {
    let Some(s) = &ds.status else {
        return (Counts::default(), 0);
    };
    (
        Counts {
            desired: s.desired_number_scheduled,
            current: s.current_number_scheduled,
            misscheduled: s.number_misscheduled,
            ready: s.number_ready,
            updated: s.updated_number_scheduled.unwrap_or(0),
            available: s.number_available.unwrap_or(0),
            unavailable: s.number_unavailable.unwrap_or(0),
        },
        s.observed_generation.unwrap_or(0),
    )
}

/// The merge patch for the status subresource, or `None` when nothing would change (upstream
/// skips the write when the counts are equal and the generation was observed already).
pub fn patch(
    ds: &DaemonSet,
    counts: &Counts,
    observe_generation: bool,
) -> Option<serde_json::Value> {
    let (now, observed) = current(ds);
    let generation = ds.metadata.generation.unwrap_or(0);
    if now == *counts && observed >= generation {
        return None;
    }
    let observed = if observe_generation {
        generation
    } else {
        observed
    };
    Some(serde_json::json!({
        "status": {
            "observedGeneration": observed,
            "desiredNumberScheduled": counts.desired,
            "currentNumberScheduled": counts.current,
            "numberMisscheduled": counts.misscheduled,
            "numberReady": counts.ready,
            "updatedNumberScheduled": counts.updated,
            "numberAvailable": counts.available,
            "numberUnavailable": counts.unavailable,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemonset::nodes::testing::node;
    use crate::pods::testing::pod;
    use k8s_openapi::api::apps::v1::DaemonSetStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn daemon_pod(
        name: &str,
        node: &str,
        hash: &str,
        ready_at: Option<i64>,
        created: i64,
    ) -> Arc<Pod> {
        let mut p = pod(name, node, "Running", ready_at);
        p.metadata.labels =
            Some([("controller-revision-hash".to_string(), hash.to_string())].into());
        p.metadata.creation_timestamp =
            Some(Time(jiff::Timestamp::from_second(created).expect("valid")));
        Arc::new(p)
    }

    #[test]
    fn counts_per_node() {
        let nodes: Vec<Arc<Node>> = ["n1", "n2", "n3", "n4", "tainted"]
            .iter()
            .map(|n| Arc::new(node(n, &[], &[])))
            .collect();
        let by_node: BTreeMap<String, Vec<Arc<Pod>>> = [
            // Ready long enough, up to date.
            (
                "n1".to_string(),
                vec![daemon_pod("a", "n1", "new", Some(10), 1)],
            ),
            // Ready but not yet for minReadySeconds, old.
            (
                "n2".to_string(),
                vec![daemon_pod("b", "n2", "old", Some(95), 1)],
            ),
            // Two pods: the oldest (old, ready) counts, not the new one.
            (
                "n3".to_string(),
                vec![
                    daemon_pod("c2", "n3", "new", None, 5),
                    daemon_pod("c", "n3", "old", Some(10), 2),
                ],
            ),
            // n4 has none; "tainted" should not run one but has.
            (
                "tainted".to_string(),
                vec![daemon_pod("d", "tainted", "new", Some(10), 1)],
            ),
        ]
        .into();
        let fit = |n: &Node| {
            let run = n.metadata.name.as_deref() != Some("tainted");
            Fit {
                should_run: run,
                should_continue_running: run,
            }
        };
        let input = Input {
            hash: "new",
            generation: None,
            min_ready_seconds: 10,
            now: jiff::Timestamp::from_second(100).expect("valid"),
        };
        let c = calculate(&nodes, fit, &by_node, &input);
        assert_eq!(
            c,
            Counts {
                desired: 4,
                current: 3,
                misscheduled: 1,
                ready: 3,
                updated: 1,
                available: 2,
                unavailable: 2,
            }
        );

        // Written only when changed; observedGeneration only when allowed.
        let mut ds = DaemonSet {
            metadata: ObjectMeta {
                generation: Some(2),
                ..ObjectMeta::default()
            },
            ..DaemonSet::default()
        };
        let p = patch(&ds, &c, false).expect("changed");
        assert_eq!(p["status"]["observedGeneration"], 0);
        let p = patch(&ds, &c, true).expect("changed");
        assert_eq!(p["status"]["observedGeneration"], 2);
        ds.status = Some(DaemonSetStatus {
            observed_generation: Some(2),
            desired_number_scheduled: 4,
            current_number_scheduled: 3,
            number_misscheduled: 1,
            number_ready: 3,
            updated_number_scheduled: Some(1),
            number_available: Some(2),
            number_unavailable: Some(2),
            ..DaemonSetStatus::default()
        });
        assert!(patch(&ds, &c, true).is_none());
        ds.metadata.generation = Some(3);
        assert!(
            patch(&ds, &c, true).is_some(),
            "a new generation to observe"
        );
    }

    #[test]
    fn bound_pods_sort_first() {
        let unbound = daemon_pod("a", "", "x", None, 1);
        let bound = daemon_pod("b", "n1", "x", None, 5);
        let mut pods = [unbound, bound];
        pods.sort_by(by_creation_and_phase);
        assert_eq!(pods[0].metadata.name.as_deref(), Some("b"));
    }
}
