//! The default plugins, one module each (upstream's `pkg/scheduler/framework/plugins`): filters
//! say whether a node can take the pod and why not; scores rank the nodes that can, 0–100 each
//! after normalisation, weighted as upstream's defaults (TaintToleration 3, NodeAffinity 2,
//! PodTopologySpread 2, InterPodAffinity 2, NodeResourcesFit 1, BalancedAllocation 1,
//! ImageLocality 1).
//!
//! Plugins are pure functions of the pod and one node (its pods included). What a plugin needs
//! of the other nodes — PodTopologySpread's counts per topology domain, InterPodAffinity's
//! matching pods per domain — it computes once per decision from every node into its part of
//! [`FilterContext`] (upstream's PreFilter) and [`ScoreContext`] (PreScore); the per-node
//! functions only read it.

pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{FilterResult, NodeInfo};

/// A filter plugin: whether the node can take the pod.
pub type Filter = fn(&Pod, &NodeInfo, &FilterContext) -> FilterResult;

/// The filters in upstream's order; the first that fails decides the node's reason.
pub const FILTERS: &[(&str, Filter)] = &[
    ("NodeUnschedulable", node_unschedulable::filter),
    ("NodeName", node_name::filter),
    ("TaintToleration", taint_toleration::filter),
    ("NodeAffinity", node_affinity::filter),
    ("NodePorts", node_ports::filter),
    ("NodeResourcesFit", node_resources::filter),
    ("PodTopologySpread", pod_topology_spread::filter),
    ("InterPodAffinity", inter_pod_affinity::filter),
];

/// What filters may look at beyond one node: the state each plugin derives once per pod from
/// every node (upstream's PreFilter). `Default` is the state of a pod that needs none.
///
/// Preemption tries a node with pods taken off it; [`FilterContext::remove_pod`] and
/// [`FilterContext::add_pod`] keep the state true for such a trial (upstream's
/// PreFilterExtensions), so a trial is judged as if the node really had those pods.
#[derive(Clone, Debug, Default)]
pub struct FilterContext {
    pub spread: pod_topology_spread::FilterState,
    pub affinity: inter_pod_affinity::FilterState,
    /// The pod's requests, computed once per decision (None: each filter computes them).
    pub requests: Option<crate::framework::Resources>,
}

impl FilterContext {
    /// The state for scheduling `pod` onto one of `all_nodes`.
    pub fn new(pod: &Pod, all_nodes: &[&NodeInfo]) -> FilterContext {
        FilterContext {
            spread: pod_topology_spread::FilterState::new(pod, all_nodes),
            affinity: inter_pod_affinity::FilterState::new(pod, all_nodes),
            requests: Some(crate::framework::pod_requests(pod)),
        }
    }

    /// `placed` was added to `node` (which now holds it).
    pub fn add_pod(&mut self, pod: &Pod, placed: &Pod, node: &NodeInfo) {
        self.spread.update(pod, placed, node, 1);
        self.affinity.update(pod, placed, node, 1);
    }

    /// `placed` was taken off `node`.
    pub fn remove_pod(&mut self, pod: &Pod, placed: &Pod, node: &NodeInfo) {
        self.spread.update(pod, placed, node, -1);
        self.affinity.update(pod, placed, node, -1);
    }
}

/// Runs every filter; the first failure is the node's.
pub fn run_filters(pod: &Pod, node: &NodeInfo, ctx: &FilterContext) -> FilterResult {
    for (_, filter) in FILTERS {
        filter(pod, node, ctx)?;
    }
    Ok(())
}

/// A score plugin: raw scores for the feasible nodes, normalised to 0–100, and its weight.
pub struct Scorer {
    pub name: &'static str,
    pub weight: i64,
    pub score: fn(&Pod, &NodeInfo, &ScoreContext) -> i64,
    pub normalize: Normalize,
}

/// What scoring may look at beyond one node, with the state plugins derive once per pod
/// (upstream's PreScore).
pub struct ScoreContext<'a> {
    /// Every node the scheduler knows (not only the feasible ones).
    pub all_nodes: &'a [&'a NodeInfo],
    pub spread: pod_topology_spread::ScoreState,
    pub affinity: inter_pod_affinity::ScoreState,
    /// The pod's cpu and memory requests as scoring counts them (`nonzero_requests`).
    pub nonzero_requests: (i64, i64),
}

impl<'a> ScoreContext<'a> {
    /// The context for scoring `pod` on the `feasible` nodes among `all_nodes`.
    pub fn new(pod: &Pod, all_nodes: &'a [&'a NodeInfo], feasible: &[&NodeInfo]) -> Self {
        ScoreContext {
            all_nodes,
            spread: pod_topology_spread::ScoreState::new(pod, all_nodes, feasible),
            affinity: inter_pod_affinity::ScoreState::new(pod, all_nodes),
            nonzero_requests: crate::framework::nonzero_requests(pod),
        }
    }
}

/// How raw scores become 0–100.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Normalize {
    /// Already 0–100.
    None,
    /// Scaled so the best node gets 100 (upstream's DefaultNormalizeScore).
    Max,
    /// Scaled so the node with the most gets 0 (fewer is better).
    MaxReversed,
    /// Scaled so the lowest gets 0 and the highest 100 (upstream's InterPodAffinity); all 0
    /// when they are equal. Raw scores may be negative.
    MinMax,
    /// Upstream's PodTopologySpread: `100 · (max + min − s) / max` over the non-negative raw
    /// scores (fewer is better, the lowest gets 100); a negative raw score marks a node the
    /// plugin ignores (see [`pod_topology_spread::IGNORED`]), which gets 0.
    TopologySpread,
}

pub const SCORERS: &[Scorer] = &[
    Scorer {
        name: "TaintToleration",
        weight: 3,
        score: taint_toleration::score,
        normalize: Normalize::MaxReversed,
    },
    Scorer {
        name: "NodeAffinity",
        weight: 2,
        score: node_affinity::score,
        normalize: Normalize::Max,
    },
    Scorer {
        name: "PodTopologySpread",
        weight: 2,
        score: pod_topology_spread::score,
        normalize: Normalize::TopologySpread,
    },
    Scorer {
        name: "InterPodAffinity",
        weight: 2,
        score: inter_pod_affinity::score,
        normalize: Normalize::MinMax,
    },
    Scorer {
        name: "NodeResourcesFit",
        weight: 1,
        score: node_resources::least_allocated,
        normalize: Normalize::None,
    },
    Scorer {
        name: "NodeResourcesBalancedAllocation",
        weight: 1,
        score: node_resources::balanced_allocation,
        normalize: Normalize::None,
    },
    Scorer {
        name: "ImageLocality",
        weight: 1,
        score: image_locality::score,
        normalize: Normalize::None,
    },
];

/// Weighted total per feasible node, in the order given.
pub fn score_nodes(pod: &Pod, feasible: &[&NodeInfo], ctx: &ScoreContext) -> Vec<i64> {
    let mut totals = vec![0i64; feasible.len()];
    for scorer in SCORERS {
        let mut raw: Vec<i64> = feasible
            .iter()
            .map(|n| (scorer.score)(pod, n, ctx))
            .collect();
        normalize(&mut raw, scorer.normalize);
        for (t, s) in totals.iter_mut().zip(raw) {
            *t += s * scorer.weight;
        }
    }
    totals
}

pub fn normalize(scores: &mut [i64], how: Normalize) {
    let max = scores.iter().copied().max().unwrap_or(0);
    match how {
        Normalize::None => {}
        Normalize::Max => {
            for s in scores.iter_mut() {
                *s = if max == 0 { 0 } else { *s * 100 / max };
            }
        }
        Normalize::MaxReversed => {
            for s in scores.iter_mut() {
                *s = if max == 0 { 100 } else { 100 - *s * 100 / max };
            }
        }
        Normalize::MinMax => {
            let min = scores.iter().copied().min().unwrap_or(0);
            for s in scores.iter_mut() {
                *s = if max > min {
                    (100 * (*s - min) as i128 / (max - min) as i128) as i64
                } else {
                    0
                };
            }
        }
        Normalize::TopologySpread => {
            let valid = || scores.iter().copied().filter(|s| *s >= 0);
            let min = valid().min().unwrap_or(0);
            let max = valid().max().unwrap_or(0);
            for s in scores.iter_mut() {
                *s = if *s < 0 {
                    0
                } else if max == 0 {
                    100
                } else {
                    100 * (max + min - *s) / max
                };
            }
        }
    }
}

#[cfg(test)]
pub mod testing {
    //! Builders for plugin tests.
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::json;

    use crate::framework::NodeInfo;

    pub fn node(name: &str, cpu: &str, memory: &str, extra: serde_json::Value) -> NodeInfo {
        let mut n = json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {
                "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        });
        merge(&mut n, extra);
        NodeInfo::new(Arc::new(serde_json::from_value::<Node>(n).unwrap()))
    }

    pub fn pod(name: &str, extra: serde_json::Value) -> Pod {
        let mut p = json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        });
        merge(&mut p, extra);
        serde_json::from_value(p).unwrap()
    }

    pub fn requests(cpu: &str, memory: &str) -> serde_json::Value {
        json!({"spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}})
    }

    /// Merges `b` into `a`, objects key by key.
    pub fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }
}
