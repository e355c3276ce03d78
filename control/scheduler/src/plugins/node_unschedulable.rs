//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes only pods that tolerate
//! `node.kubernetes.io/unschedulable:NoSchedule`.

use k8s_openapi::api::core::v1::{Pod, Taint};

use super::taint_toleration::tolerated;
use super::FilterContext;
use crate::framework::{FilterResult, NodeInfo, Unfit};

pub fn filter(pod: &Pod, node: &NodeInfo, _ctx: &FilterContext) -> FilterResult {
    let cordoned = node
        .node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    if !cordoned {
        return Ok(());
    }
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        ..Taint::default()
    };
    let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref());
    if tolerated(&taint, tolerations.unwrap_or_default()) {
        return Ok(());
    }
    Err(Unfit::unresolvable("node(s) were unschedulable"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn cordoned_nodes_take_only_tolerating_pods() {
        let n = node("a", "1", "1Gi", json!({"spec": {"unschedulable": true}}));
        assert!(filter(&pod("p", json!({})), &n, &FilterContext::default()).is_err());
        let tolerating = pod(
            "p",
            json!({"spec": {"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}}),
        );
        assert!(filter(&tolerating, &n, &FilterContext::default()).is_ok());
        assert!(filter(
            &pod("p", json!({})),
            &node("b", "1", "1Gi", json!({})),
            &FilterContext::default()
        )
        .is_ok());
    }
}
