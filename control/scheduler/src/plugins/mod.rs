//! The default plugins, one module each (upstream's `pkg/scheduler/framework/plugins`): filters
//! say whether a node can take the pod and why not; scores rank the nodes that can, 0–100 each
//! after normalisation, weighted as upstream's defaults (TaintToleration 3, NodeAffinity 2,
//! PodTopologySpread 2, NodeResourcesFit 1, BalancedAllocation 1, ImageLocality 1).

pub mod image_locality;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod spread;
pub mod taint_toleration;

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{FilterResult, NodeInfo};

/// A filter plugin: whether the node can take the pod.
pub type Filter = fn(&Pod, &NodeInfo) -> FilterResult;

/// The filters in upstream's order; the first that fails decides the node's reason.
pub const FILTERS: &[(&str, Filter)] = &[
    ("NodeUnschedulable", node_unschedulable::filter),
    ("NodeName", node_name::filter),
    ("TaintToleration", taint_toleration::filter),
    ("NodeAffinity", node_affinity::filter),
    ("NodePorts", node_ports::filter),
    ("NodeResourcesFit", node_resources::filter),
];

/// Runs every filter; the first failure is the node's.
pub fn run_filters(pod: &Pod, node: &NodeInfo) -> FilterResult {
    for (_, filter) in FILTERS {
        filter(pod, node)?;
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

/// What scoring may look at beyond one node.
pub struct ScoreContext<'a> {
    /// Every node the scheduler knows (not only the feasible ones).
    pub all_nodes: &'a [&'a NodeInfo],
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
        score: spread::score,
        normalize: Normalize::MaxReversed,
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

fn normalize(scores: &mut [i64], how: Normalize) {
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
    }
}

#[cfg(test)]
pub mod testing {
    //! Builders for plugin tests.
    use std::collections::BTreeMap;
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

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    #[allow(dead_code)]
    pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}
