//! The RollingUpdate strategy (upstream `update.go` rollingUpdate): which old pods to delete
//! and on which nodes to start a new pod beside an old one. OnDelete does nothing here: old pods
//! are replaced only when someone deletes them (the manage step then creates the new one).
//!
//! - `maxUnavailable` and `maxSurge` are ints or percentages of the nodes that should run the
//!   pod, both rounded **up** (upstream `UnavailableCount`/`SurgeCount`; a Deployment rounds
//!   unavailability down). Both zero would never progress: unavailability becomes 1.
//! - Without surge: every node whose pod is missing, unavailable or in transition counts
//!   against `maxUnavailable`; old pods that are not available anyway are deleted at once;
//!   available old pods are deleted while the budget lasts. The manage step creates the new pod
//!   once the old one is gone.
//! - With surge: a new pod starts beside an old one (at most `maxSurge` beside available old
//!   pods, any number beside unavailable ones); an old pod goes once its new pod is available.
//!   Old pods on nodes that no longer fit go only while more pods are available than desired.
//!
//! Pure: the controller hands in the pods by node (every node that should run the pod present,
//! possibly without pods) and carries out the plan.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::pod::is_updated;
use crate::deployment::util::scaled_value;
use crate::pods::is_available;

fn rolling_update(ds: &DaemonSet) -> Option<&k8s_openapi::api::apps::v1::RollingUpdateDaemonSet> {
    let strategy = ds.spec.update_strategy.as_ref()?;
    if strategy.type_.as_deref().unwrap_or("RollingUpdate") != "RollingUpdate" {
        return None;
    }
    strategy.rolling_update.as_ref()
}

/// True for `updateStrategy.type: RollingUpdate` (the API server's default).
pub fn is_rolling(ds: &DaemonSet) -> bool {
    ds.spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
        == "RollingUpdate"
}

/// Upstream `SurgeCount`: 0 unless RollingUpdate with a maxSurge.
pub fn surge_count(ds: &DaemonSet, nodes: i32) -> i32 {
    rolling_update(ds)
        .map(|r| scaled_value(r.max_surge.as_ref(), nodes, true))
        .unwrap_or(0)
}

/// Upstream `UnavailableCount`: RollingUpdate's maxUnavailable (default 1), rounded up.
pub fn unavailable_count(ds: &DaemonSet, nodes: i32) -> i32 {
    if !is_rolling(ds) {
        return 0;
    }
    let default = IntOrString::Int(1);
    let value = rolling_update(ds)
        .and_then(|r| r.max_unavailable.as_ref())
        .unwrap_or(&default);
    scaled_value(Some(value), nodes, true)
}

/// Upstream `AllowsSurge`.
pub fn allows_surge(ds: &DaemonSet) -> bool {
    surge_count(ds, 1) != 0
}

/// (maxSurge, maxUnavailable) for `desired` nodes (upstream `updatedDesiredNodeCounts`).
pub fn budget(ds: &DaemonSet, desired: i32) -> (i32, i32) {
    let surge = surge_count(ds, desired);
    let mut unavailable = unavailable_count(ds, desired);
    if desired > 0 && surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// The node's (new, old) pod, not counting pods being deleted; `None` when it has more than
/// one of either (the manage step cleans that up first) — upstream `findUpdatedPodsOnNode`.
#[allow(clippy::type_complexity)]
pub fn updated_and_old(
    pods: &[Arc<Pod>],
    hash: &str,
    generation: Option<i64>,
) -> Option<(Option<Arc<Pod>>, Option<Arc<Pod>>)> {
    let (mut new, mut old) = (None, None);
    for pod in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_updated(pod, hash, generation) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod.clone());
    }
    Some((new, old))
}

/// What a rolling update step does.
#[derive(Default)]
pub struct Plan {
    pub delete: Vec<Arc<Pod>>,
    /// Nodes that get a new pod beside their old one (surge only).
    pub create_on: Vec<String>,
}

/// What the step needs besides the pods.
pub struct Input<'a> {
    pub hash: &'a str,
    pub generation: Option<i64>,
    pub min_ready_seconds: i32,
    pub max_surge: i32,
    pub max_unavailable: i32,
    /// Nodes that should run the pod.
    pub desired: i32,
    pub now: jiff::Timestamp,
}

/// One step of the rolling update over `by_node` (every node that should run the pod has an
/// entry); `should_run` tells whether a node still fits.
pub fn plan(
    by_node: &BTreeMap<String, Vec<Arc<Pod>>>,
    input: &Input<'_>,
    should_run: impl Fn(&str) -> bool,
) -> Plan {
    let available = |p: &Pod| is_available(p, input.min_ready_seconds, input.now);
    let mut plan = Plan::default();
    if input.max_surge == 0 {
        let mut unavailable = 0;
        let mut replace = Vec::new();
        let mut candidates = Vec::new();
        for pods in by_node.values() {
            match updated_and_old(pods, input.hash, input.generation) {
                None | Some((None, None)) | Some((Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => {
                    if !available(&new) {
                        unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if !available(&old) {
                        replace.push(old);
                    } else if unavailable < input.max_unavailable {
                        candidates.push(old);
                    }
                }
            }
        }
        let room = (input.max_unavailable - unavailable).max(0) as usize;
        plan.delete = replace;
        plan.delete.extend(candidates.into_iter().take(room));
        return plan;
    }

    let mut surging = 0;
    let mut available_count = 0;
    let mut allowed = Vec::new();
    let mut candidates = Vec::new();
    let mut misplaced = Vec::new();
    for (node, pods) in by_node {
        let Some((new, old)) = updated_and_old(pods, input.hash, input.generation) else {
            surging += 1;
            continue;
        };
        if let Some(counted) = old.as_ref().or(new.as_ref()) {
            if available(counted) {
                available_count += 1;
            }
        }
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !available(&old) {
                    if should_run(node) {
                        allowed.push(node.clone());
                    } else {
                        plan.delete.push(old);
                    }
                } else if !should_run(node) {
                    misplaced.push(old);
                } else if surging < input.max_surge {
                    candidates.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if available(&new) {
                    plan.delete.push(old);
                } else {
                    surging += 1;
                }
            }
        }
    }
    let deletable = (available_count - input.desired).max(0) as usize;
    plan.delete.extend(misplaced.into_iter().take(deletable));
    let room = (input.max_surge - surging).max(0) as usize;
    plan.create_on = allowed;
    plan.create_on.extend(candidates.into_iter().take(room));
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::testing::pod;
    use k8s_openapi::api::apps::v1::{
        DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet,
    };

    fn ds(surge: Option<IntOrString>, unavailable: Option<IntOrString>) -> DaemonSet {
        DaemonSet {
            spec: DaemonSetSpec {
                update_strategy: Some(DaemonSetUpdateStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDaemonSet {
                        max_surge: surge,
                        max_unavailable: unavailable,
                    }),
                }),
                ..DaemonSetSpec::default()
            },
            ..DaemonSet::default()
        }
    }

    fn pct(s: &str) -> Option<IntOrString> {
        Some(IntOrString::String(s.into()))
    }

    #[test]
    fn percentages_round_up() {
        assert_eq!(budget(&ds(None, pct("10%")), 3), (0, 1));
        assert_eq!(budget(&ds(None, pct("30%")), 10), (0, 3));
        assert_eq!(budget(&ds(None, pct("25%")), 5), (0, 2));
        assert_eq!(
            budget(&ds(pct("25%"), Some(IntOrString::Int(0))), 5),
            (2, 0)
        );
        assert_eq!(budget(&ds(pct("1%"), Some(IntOrString::Int(0))), 1), (1, 0));
        // Defaults: maxUnavailable 1, no surge.
        assert_eq!(budget(&ds(None, None), 4), (0, 1));
        // Both zero would stall: one may be unavailable.
        assert_eq!(
            budget(&ds(Some(IntOrString::Int(0)), Some(IntOrString::Int(0))), 4),
            (0, 1)
        );
        assert_eq!(budget(&ds(None, Some(IntOrString::Int(0))), 0), (0, 0));
        let mut on_delete = ds(pct("50%"), None);
        on_delete
            .spec
            .update_strategy
            .as_mut()
            .expect("strategy")
            .type_ = Some("OnDelete".into());
        assert!(!is_rolling(&on_delete));
        assert!(!allows_surge(&on_delete));
        assert!(allows_surge(&ds(pct("1%"), None)));
    }

    fn labelled(name: &str, hash: &str, ready: bool) -> Arc<Pod> {
        let mut p = pod(name, "", "Running", ready.then_some(0));
        p.metadata.labels =
            Some([("controller-revision-hash".to_string(), hash.to_string())].into());
        Arc::new(p)
    }

    fn input(surge: i32, unavailable: i32, desired: i32) -> Input<'static> {
        Input {
            hash: "new",
            generation: None,
            min_ready_seconds: 0,
            max_surge: surge,
            max_unavailable: unavailable,
            desired,
            now: jiff::Timestamp::from_second(100).expect("valid"),
        }
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect()
    }

    #[test]
    fn unavailable_budget_limits_deletions() {
        let by_node: BTreeMap<String, Vec<Arc<Pod>>> = [
            ("n1".to_string(), vec![labelled("a", "old", true)]),
            ("n2".to_string(), vec![labelled("b", "old", true)]),
            ("n3".to_string(), vec![labelled("c", "old", false)]),
        ]
        .into();
        // The unavailable old pod goes at once; of the available ones, only the budget's worth.
        let p = plan(&by_node, &input(0, 1, 3), |_| true);
        assert_eq!(names(&p.delete), ["c", "a"]);
        assert!(p.create_on.is_empty());
        // A node still waiting for its new pod uses up the budget.
        let mut waiting = by_node.clone();
        waiting.insert("n3".into(), vec![]);
        assert!(plan(&waiting, &input(0, 1, 3), |_| true).delete.is_empty());
        // An unavailable new pod too; an available one does not.
        waiting.insert("n3".into(), vec![labelled("c2", "new", false)]);
        assert!(plan(&waiting, &input(0, 1, 3), |_| true).delete.is_empty());
        waiting.insert("n3".into(), vec![labelled("c2", "new", true)]);
        assert_eq!(
            names(&plan(&waiting, &input(0, 1, 3), |_| true).delete),
            ["a"]
        );
    }

    #[test]
    fn surge_starts_new_pods_beside_old_ones() {
        let by_node: BTreeMap<String, Vec<Arc<Pod>>> = [
            ("n1".to_string(), vec![labelled("a", "old", true)]),
            ("n2".to_string(), vec![labelled("b", "old", true)]),
            ("n3".to_string(), vec![labelled("c", "old", false)]),
        ]
        .into();
        let p = plan(&by_node, &input(1, 0, 3), |_| true);
        assert!(p.delete.is_empty());
        // n3's old pod is unavailable: replaced regardless; one more within maxSurge.
        assert_eq!(p.create_on, ["n3", "n1"]);
        // Once a new pod is available its old pod goes; one still starting counts as surge.
        let mut surged = by_node.clone();
        surged.insert(
            "n1".into(),
            vec![labelled("a", "old", true), labelled("a2", "new", true)],
        );
        surged.insert(
            "n2".into(),
            vec![labelled("b", "old", true), labelled("b2", "new", false)],
        );
        let p = plan(&surged, &input(1, 0, 3), |_| true);
        assert_eq!(names(&p.delete), ["a"]);
        assert_eq!(p.create_on, ["n3"], "no room for another surge");
    }

    #[test]
    fn two_pods_of_a_kind_are_left_to_manage() {
        let pods = vec![labelled("a", "old", true), labelled("b", "old", true)];
        assert!(updated_and_old(&pods, "new", None).is_none());
        let mut deleting = (*labelled("c", "old", true)).clone();
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        let pods = vec![labelled("a", "old", true), Arc::new(deleting)];
        assert!(matches!(
            updated_and_old(&pods, "new", None),
            Some((None, Some(_)))
        ));
    }
}
