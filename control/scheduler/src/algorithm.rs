//! One scheduling decision (upstream's `schedule_one.go` and `DefaultPreemption`), pure: run the
//! filters on every node, score the feasible ones, pick the best (ties at random); when none
//! fits, the FailedScheduling message in upstream's form and, where evicting lower-priority
//! pods would make room, the preemption plan.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use rand::Rng;

use crate::framework::{priority, NodeInfo, Unfit};
use crate::plugins::{run_filters, score_nodes, FilterContext, ScoreContext};

/// Why a pod fits nowhere, and what preemption can do about it.
#[derive(Debug, PartialEq)]
pub struct FitError {
    pub nodes: usize,
    /// Reason → how many nodes gave it.
    pub reasons: BTreeMap<String, usize>,
    pub preemption: Preemption,
}

#[derive(Debug, PartialEq)]
pub enum Preemption {
    /// Lower-priority pods to evict from `node` so the pod fits there.
    Victims {
        node: String,
        victims: Vec<Arc<Pod>>,
    },
    /// No node can be made to fit: reason → node count.
    NotPossible(BTreeMap<String, usize>),
    /// The pod may not preempt (`preemptionPolicy: Never`).
    Disabled,
}

/// How costly a node's victims are: their highest priority, their priority sum, their count
/// (lower is better, compared in that order).
type VictimRank = (i32, i64, usize);

const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

fn histogram(counts: &BTreeMap<String, usize>) -> String {
    let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

impl FitError {
    /// `0/3 nodes are available: 1 node(s) had untolerated taint {…}, 2 Insufficient cpu.
    /// preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No
    /// preemption victims found for incoming pod.`
    pub fn message(&self) -> String {
        if self.nodes == 0 {
            return "no nodes available to schedule pods".to_string();
        }
        let mut m = format!(
            "0/{} nodes are available: {}.",
            self.nodes,
            histogram(&self.reasons)
        );
        if let Preemption::NotPossible(why) = &self.preemption {
            m.push_str(&format!(
                " preemption: 0/{} nodes are available: {}.",
                self.nodes,
                histogram(why)
            ));
        }
        m
    }
}

/// How many feasible nodes are enough to choose from (upstream's `numFeasibleNodesToFind`
/// with the adaptive `percentageOfNodesToScore`): every node below 100; above, 50 % less 1 % per
/// 125 nodes (at least 5 %), and never fewer than 100. At 5,000 nodes: 500.
pub fn feasible_nodes_to_find(nodes: usize) -> usize {
    const MIN_FEASIBLE: usize = 100;
    if nodes < MIN_FEASIBLE {
        return nodes;
    }
    let percentage = 50usize.saturating_sub(nodes / 125).max(5);
    (nodes * percentage / 100).max(MIN_FEASIBLE)
}

/// Picks a node for `pod`, or says why none fits. Filters run from `*next_start` round the node
/// list and stop once enough feasible nodes are found (`feasible_nodes_to_find`); the next
/// decision starts where this one stopped, so every node gets its turn, as upstream.
pub fn schedule(
    pod: &Pod,
    nodes: &[&NodeInfo],
    next_start: &mut usize,
) -> Result<String, FitError> {
    let mut feasible = Vec::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut unfit: Vec<(&NodeInfo, Unfit)> = Vec::new();
    let ctx = FilterContext::new(pod, nodes);
    let enough = feasible_nodes_to_find(nodes.len());
    let mut processed = 0;
    for k in 0..nodes.len() {
        let node = nodes[(*next_start + k) % nodes.len()];
        processed += 1;
        match run_filters(pod, node, &ctx) {
            Ok(()) => {
                feasible.push(node);
                if feasible.len() >= enough {
                    break;
                }
            }
            Err(u) => {
                for r in &u.reasons {
                    *reasons.entry(r.clone()).or_default() += 1;
                }
                unfit.push((node, u));
            }
        }
    }
    if !nodes.is_empty() {
        *next_start = (*next_start + processed) % nodes.len();
    }
    if feasible.is_empty() {
        return Err(FitError {
            nodes: nodes.len(),
            reasons,
            preemption: preempt(pod, &unfit, &ctx),
        });
    }
    if feasible.len() == 1 {
        return Ok(feasible[0].name().to_string());
    }
    let ctx = ScoreContext::new(pod, nodes, &feasible);
    let scores = score_nodes(pod, &feasible, &ctx);
    let best = scores.iter().copied().max().unwrap_or(0);
    let top: Vec<usize> = (0..feasible.len()).filter(|i| scores[*i] == best).collect();
    let pick = top[rand::rng().random_range(0..top.len())];
    Ok(feasible[pick].name().to_string())
}

/// DefaultPreemption without PodDisruptionBudgets: on each node whose failure removing pods can
/// fix, evict lower-priority pods (all of them, then give back the highest-priority ones that
/// can stay); choose the node whose victims have the lowest highest priority, then the lowest
/// priority sum, then the fewest.
fn preempt(pod: &Pod, unfit: &[(&NodeInfo, Unfit)], ctx: &FilterContext) -> Preemption {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.preemption_policy.as_deref());
    if policy == Some("Never") {
        return Preemption::Disabled;
    }
    let mine = priority(pod);
    let mut why: BTreeMap<String, usize> = BTreeMap::new();
    // (rank, node, victims) of the best candidate so far.
    let mut best: Option<(VictimRank, String, Vec<Arc<Pod>>)> = None;
    for (node, u) in unfit {
        if u.unresolvable {
            *why.entry(NOT_HELPFUL.into()).or_default() += 1;
            continue;
        }
        match victims_on(pod, mine, node, ctx) {
            None => *why.entry(NO_VICTIMS.into()).or_default() += 1,
            Some(victims) => {
                let rank = (
                    victims
                        .iter()
                        .map(|v| priority(v))
                        .max()
                        .unwrap_or(i32::MIN),
                    victims.iter().map(|v| i64::from(priority(v))).sum::<i64>(),
                    victims.len(),
                );
                if best.as_ref().is_none_or(|(r, _, _)| rank < *r) {
                    best = Some((rank, node.name().to_string(), victims));
                }
            }
        }
    }
    match best {
        Some((_, node, victims)) => Preemption::Victims { node, victims },
        None => Preemption::NotPossible(why),
    }
}

/// The fewest lower-priority pods whose eviction makes `pod` fit on `node`; None when even
/// evicting all of them would not. The filter context follows every pod taken off or put back.
fn victims_on(pod: &Pod, mine: i32, node: &NodeInfo, ctx: &FilterContext) -> Option<Vec<Arc<Pod>>> {
    let mut trial = node.clone();
    let mut ctx = ctx.clone();
    let mut candidates: Vec<Arc<Pod>> = node
        .pods
        .iter()
        .filter(|p| priority(p) < mine)
        .cloned()
        .collect();
    if candidates.is_empty() {
        return None;
    }
    for c in &candidates {
        trial.remove_pod(c.metadata.uid.as_deref().unwrap_or_default());
        ctx.remove_pod(pod, c, &trial);
    }
    run_filters(pod, &trial, &ctx).ok()?;
    // Give back the most important ones first while the pod still fits.
    candidates.sort_by_key(|p| std::cmp::Reverse(priority(p)));
    let mut victims = Vec::new();
    for c in candidates {
        trial.add_pod(c.clone());
        ctx.add_pod(pod, &c, &trial);
        if run_filters(pod, &trial, &ctx).is_err() {
            trial.remove_pod(c.metadata.uid.as_deref().unwrap_or_default());
            ctx.remove_pod(pod, &c, &trial);
            victims.push(c);
        }
    }
    Some(victims)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::plugins::testing::{node, pod, requests};
    use serde_json::json;

    #[test]
    fn picks_a_feasible_node_and_spreads() {
        let a = node("a", "2", "4Gi", json!({}));
        let mut b = node("b", "2", "4Gi", json!({}));
        b.add_pod(Arc::new(pod("x", requests("1500m", "1Gi"))));
        let p = pod("p", requests("200m", "128Mi"));
        assert_eq!(
            schedule(&p, &[&a, &b], &mut 0).unwrap(),
            "a",
            "the emptier node wins"
        );
    }

    #[test]
    fn samples_large_clusters_and_rotates() {
        assert_eq!(feasible_nodes_to_find(50), 50);
        assert_eq!(feasible_nodes_to_find(150), 100);
        assert_eq!(feasible_nodes_to_find(1000), 420);
        assert_eq!(feasible_nodes_to_find(5000), 500);
        assert_eq!(feasible_nodes_to_find(100_000), 5000);
        let nodes: Vec<NodeInfo> = (0..200)
            .map(|i| node(&format!("n{i}"), "2", "4Gi", json!({})))
            .collect();
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        let mut start = 0;
        let p = pod("p", requests("100m", "64Mi"));
        schedule(&p, &refs, &mut start).unwrap();
        assert_eq!(start, 100, "stopped after 100 feasible nodes");
        schedule(&p, &refs, &mut start).unwrap();
        assert_eq!(start, 0, "and went on from there");
    }

    #[test]
    fn upstreams_message_when_nothing_fits() {
        let tainted = node(
            "cp",
            "4",
            "8Gi",
            json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
        );
        let small1 = node("w1", "1", "8Gi", json!({}));
        let small2 = node("w2", "1", "8Gi", json!({}));
        let p = pod("p", requests("2", "1Gi"));
        let err = schedule(&p, &[&tainted, &small1, &small2], &mut 0).unwrap_err();
        assert_eq!(
            err.message(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
        );
        let none = FitError {
            nodes: 0,
            reasons: BTreeMap::new(),
            preemption: Preemption::NotPossible(BTreeMap::new()),
        };
        assert_eq!(none.message(), "no nodes available to schedule pods");
    }

    #[test]
    fn preemption_evicts_the_fewest_lower_priority_pods() {
        let mut n = node("a", "2", "8Gi", json!({}));
        let low = |name: &str, cpu: &str, prio: i32| {
            let mut p = pod(name, requests(cpu, "128Mi"));
            p.spec.as_mut().unwrap().priority = Some(prio);
            Arc::new(p)
        };
        n.add_pod(low("small-low", "500m", 0));
        n.add_pod(low("big-low", "1", 10));
        n.add_pod(low("high", "500m", 1000));
        let mut p = pod("important", requests("1", "128Mi"));
        p.spec.as_mut().unwrap().priority = Some(100);
        let err = schedule(&p, &[&n], &mut 0).unwrap_err();
        let Preemption::Victims { node, victims } = err.preemption else {
            panic!("expected victims, got {:?}", err.preemption);
        };
        assert_eq!(node, "a");
        let names: Vec<&str> = victims
            .iter()
            .map(|v| v.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(
            names,
            ["big-low"],
            "the 10-priority pod frees enough; the 0 one may stay"
        );
        p.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
        assert_eq!(
            schedule(&p, &[&n], &mut 0).unwrap_err().preemption,
            Preemption::Disabled
        );
    }

    #[test]
    fn pod_affinity_decides_and_preemption_sees_other_pods_leave() {
        let web = |name: &str, prio: i32| {
            let mut p = pod(name, json!({"metadata": {"labels": {"app": "web"}}}));
            p.spec.as_mut().unwrap().priority = Some(prio);
            Arc::new(p)
        };
        let mut a = node("a", "4", "8Gi", json!({}));
        a.add_pod(web("web-1", 0));
        let b = node("b", "4", "8Gi", json!({}));
        let mut p = pod(
            "web-2",
            json!({"metadata": {"labels": {"app": "web"}}, "spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "web"}}}
            ]}}}}),
        );
        p.spec.as_mut().unwrap().priority = Some(100);
        assert_eq!(schedule(&p, &[&a, &b], &mut 0).unwrap(), "b");
        let err = schedule(&p, &[&a], &mut 0).unwrap_err();
        assert_eq!(
            err.reasons,
            BTreeMap::from([(
                "node(s) didn't match pod anti-affinity rules".to_string(),
                1
            )])
        );
        let Preemption::Victims { node, victims } = err.preemption else {
            panic!("expected victims, got {:?}", err.preemption);
        };
        assert_eq!(node, "a");
        assert_eq!(victims.len(), 1);
        assert_eq!(victims[0].metadata.name.as_deref(), Some("web-1"));
    }
}
