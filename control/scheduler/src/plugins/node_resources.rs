//! NodeResourcesFit and NodeResourcesBalancedAllocation: a pod fits when its requests (upstream's
//! `PodRequests`) fit in what the node's allocatable leaves after the pods already there, and
//! the pod count stays within allocatable pods; nodes with more left score higher
//! (LeastAllocated, cpu and memory weighted 1 each), and nodes whose cpu and memory would be used
//! in similar shares score higher too.

use k8s_openapi::api::core::v1::Pod;

use super::{FilterContext, ScoreContext};
use crate::framework::{pod_requests, FilterResult, NodeInfo, Unfit};

pub fn filter(pod: &Pod, node: &NodeInfo, ctx: &FilterContext) -> FilterResult {
    let mut reasons = Vec::new();
    if node.pods.len() as i64 + 1 > node.allowed_pods {
        reasons.push("Too many pods".to_string());
    }
    // The decision computes the pod's requests once (`FilterContext::new`); a bare context
    // (tests, single checks) computes them here.
    let computed;
    let want = match &ctx.requests {
        Some(r) => r,
        None => {
            computed = pod_requests(pod);
            &computed
        }
    };
    let free = |alloc: i64, used: i64| alloc - used;
    if want.milli_cpu > 0
        && want.milli_cpu > free(node.allocatable.milli_cpu, node.requested.milli_cpu)
    {
        reasons.push("Insufficient cpu".to_string());
    }
    if want.memory > 0 && want.memory > free(node.allocatable.memory, node.requested.memory) {
        reasons.push("Insufficient memory".to_string());
    }
    if want.ephemeral_storage > 0
        && want.ephemeral_storage
            > free(
                node.allocatable.ephemeral_storage,
                node.requested.ephemeral_storage,
            )
    {
        reasons.push("Insufficient ephemeral-storage".to_string());
    }
    for (name, amount) in &want.scalar {
        let alloc = node.allocatable.scalar.get(name).copied().unwrap_or(0);
        let used = node.requested.scalar.get(name).copied().unwrap_or(0);
        if *amount > 0 && *amount > free(alloc, used) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(Unfit {
            reasons,
            unresolvable: false,
        })
    }
}

/// (requested after placing the pod, allocatable) for cpu and memory, as scoring counts them.
fn usage(node: &NodeInfo, ctx: &ScoreContext) -> [(i64, i64); 2] {
    let (cpu, memory) = ctx.nonzero_requests;
    [
        (node.nonzero_requested.0 + cpu, node.allocatable.milli_cpu),
        (node.nonzero_requested.1 + memory, node.allocatable.memory),
    ]
}

/// LeastAllocated: the average share left free, 0–100.
pub fn least_allocated(_pod: &Pod, node: &NodeInfo, ctx: &ScoreContext) -> i64 {
    let parts = usage(node, ctx);
    let score: i64 = parts
        .iter()
        .map(|(requested, capacity)| {
            if *capacity == 0 || requested > capacity {
                0
            } else {
                (capacity - requested) * 100 / capacity
            }
        })
        .sum();
    score / parts.len() as i64
}

/// BalancedAllocation: 100 × (1 − the standard deviation of the cpu and memory shares).
pub fn balanced_allocation(_pod: &Pod, node: &NodeInfo, ctx: &ScoreContext) -> i64 {
    let shares: Vec<f64> = usage(node, ctx)
        .iter()
        .map(|(requested, capacity)| {
            if *capacity == 0 {
                0.0
            } else {
                (*requested as f64 / *capacity as f64).min(1.0)
            }
        })
        .collect();
    let mean = shares.iter().sum::<f64>() / shares.len() as f64;
    let variance = shares.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / shares.len() as f64;
    ((1.0 - variance.sqrt()) * 100.0) as i64
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::plugins::testing::{node, pod, requests};
    use serde_json::json;

    #[test]
    fn requests_must_fit_what_is_left() {
        let mut n = node("a", "2", "4Gi", json!({}));
        n.add_pod(Arc::new(pod("big", requests("1500m", "1Gi"))));
        assert!(filter(
            &pod("p", requests("500m", "1Gi")),
            &n,
            &FilterContext::default()
        )
        .is_ok());
        let err = filter(
            &pod("p", requests("600m", "4Gi")),
            &n,
            &FilterContext::default(),
        )
        .unwrap_err();
        assert_eq!(err.reasons, ["Insufficient cpu", "Insufficient memory"]);
        assert!(!err.unresolvable);
    }

    #[test]
    fn init_containers_and_sidecars_count_as_upstream() {
        // max(app 100m + sidecar 200m, init 1 + sidecar before it) = max(300m, 1200m)
        let p = pod(
            "p",
            json!({"spec": {
                "initContainers": [
                    {"name": "side", "image": "x", "restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}},
                    {"name": "init", "image": "x", "resources": {"requests": {"cpu": "1"}}}
                ],
                "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "100m"}}}],
                "overhead": {"cpu": "50m"}
            }}),
        );
        assert_eq!(pod_requests(&p).milli_cpu, 1250);
    }

    #[test]
    fn too_many_pods_and_extended_resources() {
        let mut n = node(
            "a",
            "8",
            "8Gi",
            json!({"status": {"allocatable": {"pods": "1", "example.com/gpu": "1"}}}),
        );
        let gpu = pod(
            "g",
            json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"example.com/gpu": "2"}}}]}}),
        );
        assert_eq!(
            filter(&gpu, &n, &FilterContext::default())
                .unwrap_err()
                .reasons,
            ["Insufficient example.com/gpu"]
        );
        n.add_pod(Arc::new(pod("q", json!({}))));
        assert_eq!(
            filter(&pod("p", json!({})), &n, &FilterContext::default())
                .unwrap_err()
                .reasons,
            ["Too many pods"]
        );
    }

    #[test]
    fn emptier_nodes_score_higher() {
        let empty = node("a", "4", "8Gi", json!({}));
        let mut busy = node("b", "4", "8Gi", json!({}));
        busy.add_pod(Arc::new(pod("x", requests("3", "6Gi"))));
        let p = pod("p", requests("500m", "1Gi"));
        let ctx = ScoreContext::new(&p, &[], &[]);
        assert!(least_allocated(&p, &empty, &ctx) > least_allocated(&p, &busy, &ctx));
        assert!(balanced_allocation(&p, &empty, &ctx) <= 100);
    }
}
