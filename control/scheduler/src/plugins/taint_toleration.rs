//! TaintToleration: a node's NoSchedule and NoExecute taints keep out pods that do not tolerate
//! them; untolerated PreferNoSchedule taints lower the node's score.
//!
//! A node whose Ready condition is not True counts as tainted
//! `node.kubernetes.io/not-ready:NoSchedule` (`unreachable` when Unknown) even before a node
//! lifecycle controller writes that taint, so pods never land on a node that is not ready.

use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};

use super::{FilterContext, ScoreContext};
use crate::framework::{FilterResult, NodeInfo, Unfit};

/// Upstream's `Toleration.ToleratesTaint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

pub fn tolerated(taint: &Taint, tolerations: &[Toleration]) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// The node's taints, with the not-ready/unreachable one its Ready condition implies (worked out
/// once per node update, `NodeInfo::new`).
pub fn effective_taints(node: &NodeInfo) -> &[Taint] {
    &node.taints
}

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

pub fn filter(pod: &Pod, node: &NodeInfo, _ctx: &FilterContext) -> FilterResult {
    let tolerations = tolerations(pod);
    for taint in effective_taints(node) {
        if (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
            && !tolerated(taint, tolerations)
        {
            return Err(Unfit::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or_default()
            )));
        }
    }
    Ok(())
}

/// The number of PreferNoSchedule taints the pod does not tolerate (fewer is better).
pub fn score(pod: &Pod, node: &NodeInfo, _ctx: &ScoreContext) -> i64 {
    let prefer: Vec<Toleration> = tolerations(pod)
        .iter()
        .filter(|t| {
            matches!(
                t.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        })
        .cloned()
        .collect();
    effective_taints(node)
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(t, &prefer))
        .count() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn taints_keep_out_pods_that_do_not_tolerate_them() {
        let n = node(
            "a",
            "1",
            "1Gi",
            json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}}),
        );
        let err = filter(&pod("p", json!({})), &n, &FilterContext::default()).unwrap_err();
        assert_eq!(
            err.reasons,
            ["node(s) had untolerated taint {dedicated: db}"]
        );
        assert!(err.unresolvable);
        for t in [
            json!({"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}),
            json!({"key": "dedicated", "operator": "Exists"}),
            json!({"operator": "Exists"}),
        ] {
            assert!(
                filter(
                    &pod("p", json!({"spec": {"tolerations": [t.clone()]}})),
                    &n,
                    &FilterContext::default()
                )
                .is_ok(),
                "{t}"
            );
        }
        let wrong_value = json!({"key": "dedicated", "value": "web", "effect": "NoSchedule"});
        assert!(filter(
            &pod("p", json!({"spec": {"tolerations": [wrong_value]}})),
            &n,
            &FilterContext::default()
        )
        .is_err());
    }

    #[test]
    fn a_node_that_is_not_ready_is_tainted() {
        let n = node(
            "a",
            "1",
            "1Gi",
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
        );
        let err = filter(&pod("p", json!({})), &n, &FilterContext::default()).unwrap_err();
        assert_eq!(
            err.reasons,
            ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]
        );
        let unknown = node(
            "b",
            "1",
            "1Gi",
            json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
        );
        let err = filter(&pod("p", json!({})), &unknown, &FilterContext::default()).unwrap_err();
        assert_eq!(
            err.reasons,
            ["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"]
        );
    }

    #[test]
    fn prefer_no_schedule_counts_against_the_node() {
        let ctx = ScoreContext::new(&pod("p", json!({})), &[], &[]);
        let n = node(
            "a",
            "1",
            "1Gi",
            json!({"spec": {"taints": [{"key": "spot", "effect": "PreferNoSchedule"}]}}),
        );
        assert!(filter(&pod("p", json!({})), &n, &FilterContext::default()).is_ok());
        assert_eq!(score(&pod("p", json!({})), &n, &ctx), 1);
        let tolerating = pod(
            "p",
            json!({"spec": {"tolerations": [{"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}]}}),
        );
        assert_eq!(score(&tolerating, &n, &ctx), 0);
    }
}
