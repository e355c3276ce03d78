//! Default spreading (upstream's PodTopologySpread system defaults, by hostname): replicas of one
//! workload — pods with the same controller — prefer nodes that run fewer of them.
//!
//! Explicit `topologySpreadConstraints` and the zone part of the defaults are not implemented yet.

use k8s_openapi::api::core::v1::Pod;

use super::ScoreContext;
use crate::framework::NodeInfo;

fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

/// How many of the pod's siblings the node runs (fewer is better).
pub fn score(pod: &Pod, node: &NodeInfo, _ctx: &ScoreContext) -> i64 {
    let Some(owner) = controller_uid(pod) else {
        return 0;
    };
    node.pods
        .iter()
        .filter(|p| {
            p.metadata.namespace == pod.metadata.namespace && controller_uid(p) == Some(owner)
        })
        .count() as i64
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::plugins::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn siblings_count_against_a_node() {
        let owned = |name: &str| {
            pod(
                name,
                json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "rs-1", "controller": true}]}}),
            )
        };
        let ctx = ScoreContext { all_nodes: &[] };
        let mut n = node("a", "1", "1Gi", json!({}));
        n.add_pod(Arc::new(owned("web-1")));
        n.add_pod(Arc::new(pod("other", json!({}))));
        assert_eq!(score(&owned("web-2"), &n, &ctx), 1);
        assert_eq!(score(&pod("lonely", json!({})), &n, &ctx), 0);
    }
}
