//! What a node needs (upstream `podsShouldBeOnNode` and `getUnscheduledPodsWithoutNode`): a
//! daemon pod created, or some of its daemon pods deleted.
//!
//! - should run, has none: create one;
//! - may keep running: failed pods go (rate-limited by `failed.rs`, the manage step recreates
//!   them), succeeded pods go; of several running pods only the oldest stays — with surge, the
//!   oldest up-to-date pod may stay beside the oldest old one until it is available;
//! - may not keep running: every pod goes;
//! - pods aimed at a node that no longer exists and never bound go too (the pod GC only
//!   collects pods bound to a missing node).
//!
//! A node whose only pod is terminating gets its new pod once that pod is gone.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::nodes::Fit;
use super::pod::HASH_LABEL;
use super::status::by_creation_and_phase;
use crate::pods::{is_available, is_ready};

/// What one node needs.
#[derive(Default)]
pub struct NodeNeeds {
    pub create: bool,
    pub delete: Vec<Arc<Pod>>,
}

/// What the decision depends on besides the node's fit and pods.
pub struct Input<'a> {
    pub hash: &'a str,
    pub surge: bool,
    pub min_ready_seconds: i32,
    pub now: jiff::Timestamp,
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

/// Upstream `podsShouldBeOnNode`. `delete_failed` is asked before a failed pod is deleted
/// (backoff and the FailedDaemonPod event live with the caller).
pub fn on_node(
    fit: Fit,
    pods: Option<&Vec<Arc<Pod>>>,
    input: &Input<'_>,
    mut delete_failed: impl FnMut(&Arc<Pod>) -> bool,
) -> NodeNeeds {
    let mut needs = NodeNeeds::default();
    match pods {
        None if fit.should_run => needs.create = true,
        _ if fit.should_continue_running => {
            let mut running = Vec::new();
            for pod in pods.into_iter().flatten() {
                if pod.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                match phase(pod) {
                    Some("Failed") => {
                        if delete_failed(pod) {
                            needs.delete.push(pod.clone());
                        }
                    }
                    Some("Succeeded") => needs.delete.push(pod.clone()),
                    _ => running.push(pod.clone()),
                }
            }
            running.sort_by(by_creation_and_phase);
            if !input.surge {
                needs.delete.extend(running.into_iter().skip(1));
                return needs;
            }
            if running.len() <= 1 {
                needs.create = running.is_empty() && fit.should_run;
                return needs;
            }
            // Surge: keep the oldest new pod and the oldest old one, the old one only while
            // the new one is not yet available (and the old one still ready).
            let (mut oldest_new, mut oldest_old) = (None, None);
            for pod in running {
                let label = pod.metadata.labels.as_ref().and_then(|l| l.get(HASH_LABEL));
                let slot = if label.map(String::as_str) == Some(input.hash) {
                    &mut oldest_new
                } else {
                    &mut oldest_old
                };
                if slot.is_none() {
                    *slot = Some(pod);
                } else {
                    needs.delete.push(pod);
                }
            }
            if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
                if !is_ready(&old) || is_available(&new, input.min_ready_seconds, input.now) {
                    needs.delete.push(old);
                }
            }
        }
        Some(pods) => needs.delete.extend(
            pods.iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .cloned(),
        ),
        None => {}
    }
    needs
}

/// Unbound pods aimed at nodes that do not exist (upstream `getUnscheduledPodsWithoutNode`).
pub fn unscheduled_without_node(
    nodes: &HashSet<String>,
    by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
) -> Vec<Arc<Pod>> {
    by_node
        .iter()
        .filter(|(node, _)| !nodes.contains(*node))
        .flat_map(|(_, pods)| pods.iter())
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_none_or(str::is_empty)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::testing::pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const RUN: Fit = Fit {
        should_run: true,
        should_continue_running: true,
    };
    const KEEP: Fit = Fit {
        should_run: false,
        should_continue_running: true,
    };
    const EVICT: Fit = Fit {
        should_run: false,
        should_continue_running: false,
    };

    fn input(surge: bool) -> Input<'static> {
        Input {
            hash: "new",
            surge,
            min_ready_seconds: 0,
            now: jiff::Timestamp::from_second(100).expect("valid"),
        }
    }

    fn p(name: &str, phase: &str, hash: &str, created: i64, ready: bool) -> Arc<Pod> {
        let mut p = pod(name, "n1", phase, ready.then_some(0));
        p.metadata.labels = Some([(HASH_LABEL.to_string(), hash.to_string())].into());
        p.metadata.creation_timestamp =
            Some(Time(jiff::Timestamp::from_second(created).expect("valid")));
        Arc::new(p)
    }

    fn names(needs: &NodeNeeds) -> Vec<String> {
        needs
            .delete
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect()
    }

    #[test]
    fn create_keep_or_evict() {
        assert!(on_node(RUN, None, &input(false), |_| true).create);
        assert!(!on_node(KEEP, None, &input(false), |_| true).create);
        let pods = vec![p("a", "Running", "new", 1, true)];
        let kept = on_node(KEEP, Some(&pods), &input(false), |_| true);
        assert!(!kept.create && kept.delete.is_empty());
        assert_eq!(
            names(&on_node(EVICT, Some(&pods), &input(false), |_| true)),
            ["a"]
        );
    }

    #[test]
    fn failed_succeeded_and_extra_pods_go() {
        let pods = vec![
            p("young", "Running", "new", 5, true),
            p("failed", "Failed", "new", 1, false),
            p("done", "Succeeded", "new", 1, false),
            p("old", "Running", "new", 2, true),
        ];
        let needs = on_node(RUN, Some(&pods), &input(false), |_| true);
        assert_eq!(names(&needs), ["failed", "done", "young"]);
        // In backoff: the failed pod stays for now.
        let needs = on_node(RUN, Some(&pods), &input(false), |_| false);
        assert_eq!(names(&needs), ["done", "young"]);
        // A node whose pod is only terminating waits for it to go.
        let mut deleting = (*p("t", "Running", "new", 1, true)).clone();
        deleting.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let needs = on_node(RUN, Some(&vec![Arc::new(deleting)]), &input(false), |_| {
            true
        });
        assert!(!needs.create && needs.delete.is_empty());
    }

    #[test]
    fn surge_keeps_old_until_new_is_available() {
        let waiting = vec![
            p("old", "Running", "old", 1, true),
            p("new", "Running", "new", 2, false),
        ];
        assert!(on_node(RUN, Some(&waiting), &input(true), |_| true)
            .delete
            .is_empty());
        let ready = vec![
            p("old", "Running", "old", 1, true),
            p("new", "Running", "new", 2, true),
        ];
        assert_eq!(
            names(&on_node(RUN, Some(&ready), &input(true), |_| true)),
            ["old"]
        );
        let broken = vec![
            p("old", "Running", "old", 1, false),
            p("new", "Running", "new", 2, false),
        ];
        assert_eq!(
            names(&on_node(RUN, Some(&broken), &input(true), |_| true)),
            ["old"]
        );
        // With surge a node left without a running pod gets one.
        let failed = vec![p("f", "Failed", "new", 1, false)];
        let needs = on_node(RUN, Some(&failed), &input(true), |_| true);
        assert!(needs.create);
        assert_eq!(names(&needs), ["f"]);
    }

    #[test]
    fn unbound_pods_for_missing_nodes() {
        let mut unbound = pod("u", "", "Pending", None);
        unbound.metadata.name = Some("u".into());
        let by_node: BTreeMap<String, Vec<Arc<Pod>>> = [
            ("gone".to_string(), vec![Arc::new(unbound)]),
            (
                "gone-bound".to_string(),
                vec![Arc::new(pod("b", "gone-bound", "Running", None))],
            ),
            (
                "n1".to_string(),
                vec![Arc::new(pod("c", "", "Pending", None))],
            ),
        ]
        .into();
        let nodes: HashSet<String> = ["n1".to_string()].into();
        let doomed = unscheduled_without_node(&nodes, &by_node);
        assert_eq!(doomed.len(), 1);
        assert_eq!(doomed[0].metadata.name.as_deref(), Some("u"));
    }
}
