//! NodeAffinity: `spec.nodeSelector` and required node affinity must match the node; preferred
//! terms add their weights to its score.

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Pod};

use super::{FilterContext, ScoreContext};
use crate::framework::{FilterResult, NodeInfo, Unfit};

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => !value.is_some_and(|v| values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// A term matches when all its expressions (on labels) and fields (metadata.name) match; an
/// empty term matches nothing, as upstream.
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let labels = node.labels();
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, Some(node.name())))
}

/// Whether the node matches the pod's `nodeSelector` and required node affinity (upstream's
/// `RequiredNodeAffinity.Match`).
pub fn matches_required(pod: &Pod, node: &NodeInfo) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let labels = node.labels();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let affinity_ok =
        required.is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, node)));
    selector_ok && affinity_ok
}

pub fn filter(pod: &Pod, node: &NodeInfo, _ctx: &FilterContext) -> FilterResult {
    if matches_required(pod, node) {
        Ok(())
    } else {
        Err(Unfit::unresolvable(
            "node(s) didn't match Pod's node affinity/selector",
        ))
    }
}

/// The summed weights of the preferred terms the node matches.
pub fn score(pod: &Pod, node: &NodeInfo, _ctx: &ScoreContext) -> i64 {
    pod.spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .filter(|p| term_matches(&p.preference, node))
        .map(|p| i64::from(p.weight))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod};
    use serde_json::json;

    #[test]
    fn selector_and_required_affinity() {
        let ssd = node(
            "a",
            "1",
            "1Gi",
            json!({"metadata": {"labels": {"disk": "ssd", "gen": "5"}}}),
        );
        let hdd = node(
            "b",
            "1",
            "1Gi",
            json!({"metadata": {"labels": {"disk": "hdd"}}}),
        );
        let p = pod("p", json!({"spec": {"nodeSelector": {"disk": "ssd"}}}));
        assert!(filter(&p, &ssd, &FilterContext::default()).is_ok());
        let err = filter(&p, &hdd, &FilterContext::default()).unwrap_err();
        assert_eq!(
            err.reasons,
            ["node(s) didn't match Pod's node affinity/selector"]
        );
        let required = |op: &str, values: serde_json::Value| {
            pod(
                "p",
                json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "gen", "operator": op, "values": values}]}]}}}}}),
            )
        };
        assert!(filter(
            &required("Gt", json!(["4"])),
            &ssd,
            &FilterContext::default()
        )
        .is_ok());
        assert!(filter(
            &required("Lt", json!(["4"])),
            &ssd,
            &FilterContext::default()
        )
        .is_err());
        assert!(filter(
            &required("Exists", json!(null)),
            &hdd,
            &FilterContext::default()
        )
        .is_err());
        assert!(filter(
            &required("DoesNotExist", json!(null)),
            &hdd,
            &FilterContext::default()
        )
        .is_ok());
        assert!(filter(
            &required("In", json!(["5", "6"])),
            &ssd,
            &FilterContext::default()
        )
        .is_ok());
        assert!(filter(
            &required("NotIn", json!(["5"])),
            &ssd,
            &FilterContext::default()
        )
        .is_err());
        let by_name = pod(
            "p",
            json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["b"]}]}]}}}}}),
        );
        assert!(filter(&by_name, &hdd, &FilterContext::default()).is_ok());
        assert!(filter(&by_name, &ssd, &FilterContext::default()).is_err());
    }

    #[test]
    fn preferred_terms_score_their_weight() {
        let ctx = ScoreContext::new(&pod("p", json!({})), &[], &[]);
        let ssd = node(
            "a",
            "1",
            "1Gi",
            json!({"metadata": {"labels": {"disk": "ssd"}}}),
        );
        let p = pod(
            "p",
            json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 30, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
                {"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}}
            ]}}}}),
        );
        assert_eq!(score(&p, &ssd, &ctx), 30);
    }
}
