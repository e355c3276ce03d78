//! Which nodes a DaemonSet's pods belong on (upstream `NodeShouldRunDaemonPod` and
//! `predicates`), and which node a daemon pod is for (`GetTargetNodeName`).
//!
//! A node should run the daemon pod when the template's `nodeName` (if any), `nodeSelector`
//! and required node affinity fit it and no NoSchedule or NoExecute taint is left untolerated
//! by the pod's tolerations — the template's plus the ones every daemon pod gets (`pod.rs`:
//! not-ready, unreachable, pressure, unschedulable). A node that fails only on taints keeps a
//! pod it already runs unless a NoExecute taint is untolerated: a new NoSchedule taint keeps
//! new pods away, as on the scheduler, but evicts nothing.
//!
//! This is the scheduler's own filter logic in small (the controller decides where pods go;
//! the scheduler then binds each pod to the one node its `matchFields` affinity names).

use crate::tainteviction::tolerates;
use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Taint, Toleration,
};

use super::pod::add_default_tolerations;

/// Whether the node should run a daemon pod, and whether a daemon pod already on it may keep
/// running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fit {
    pub should_run: bool,
    pub should_continue_running: bool,
}

/// The first taint with an effect `effects` accepts that no toleration tolerates.
pub fn untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    effects: &[&str],
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| effects.contains(&t.effect.as_str()))
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

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

/// A term matches when its label expressions and its fields (only `metadata.name` exists) all
/// match; an empty term matches nothing.
fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    let labels = node.metadata.labels.as_ref();
    let name = node.metadata.name.as_deref();
    expressions
        .iter()
        .all(|r| requirement_matches(r, labels.and_then(|l| l.get(&r.key)).map(String::as_str)))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, name))
}

/// `nodeSelector` and required node affinity (upstream `GetRequiredNodeAffinity(pod).Match`).
pub fn matches_required_affinity(spec: &PodSpec, node: &Node) -> bool {
    let labels = node.metadata.labels.as_ref();
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selector_ok
        && required.is_none_or(|r| r.node_selector_terms.iter().any(|t| term_matches(t, node)))
}

/// Upstream `NodeShouldRunDaemonPod`, for the DaemonSet's pod template spec.
pub fn fit(template_spec: Option<&PodSpec>, node: &Node) -> Fit {
    const NO: Fit = Fit {
        should_run: false,
        should_continue_running: false,
    };
    let node_name = node.metadata.name.as_deref().unwrap_or_default();
    let mut spec = template_spec.cloned().unwrap_or_default();
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != node_name)
    {
        return NO;
    }
    spec.node_name = Some(node_name.to_string());
    add_default_tolerations(&mut spec);
    if !matches_required_affinity(&spec, node) {
        return NO;
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default();
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    if untolerated(taints, tolerations, &["NoSchedule", "NoExecute"]).is_none() {
        return Fit {
            should_run: true,
            should_continue_running: true,
        };
    }
    Fit {
        should_run: false,
        should_continue_running: untolerated(taints, tolerations, &["NoExecute"]).is_none(),
    }
}

/// The node a daemon pod is for: its `spec.nodeName` once bound, else the `metadata.name In
/// [node]` field of its required node affinity (upstream `GetTargetNodeName`).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(name) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(name.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    for term in terms {
        for r in term.match_fields.iter().flatten() {
            if r.key == "metadata.name" && r.operator == "In" {
                let values = r.values.as_deref().unwrap_or_default();
                return (values.len() == 1).then(|| values[0].clone());
            }
        }
    }
    None
}

#[cfg(test)]
pub mod testing {
    //! Nodes for the unit tests.
    use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                taints: Some(
                    taints
                        .iter()
                        .map(|(key, effect)| Taint {
                            key: key.to_string(),
                            effect: effect.to_string(),
                            ..Taint::default()
                        })
                        .collect(),
                ),
                ..NodeSpec::default()
            }),
            status: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::node;
    use super::*;
    use k8s_openapi::api::core::v1::{Affinity, NodeAffinity, NodeSelector};

    fn spec() -> PodSpec {
        PodSpec::default()
    }

    fn yes() -> Fit {
        Fit {
            should_run: true,
            should_continue_running: true,
        }
    }

    #[test]
    fn node_selector_and_required_affinity() {
        let mut s = spec();
        s.node_selector = Some([("disk".to_string(), "ssd".to_string())].into());
        assert_eq!(fit(Some(&s), &node("a", &[("disk", "ssd")], &[])), yes());
        assert!(!fit(Some(&s), &node("b", &[("disk", "hdd")], &[])).should_run);
        assert!(!fit(Some(&s), &node("b", &[("disk", "hdd")], &[])).should_continue_running);

        let mut s = spec();
        s.affinity = Some(Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "zone".into(),
                            operator: "NotIn".into(),
                            values: Some(vec!["z1".into()]),
                        }]),
                        match_fields: None,
                    }],
                }),
                ..NodeAffinity::default()
            }),
            ..Affinity::default()
        });
        assert!(fit(Some(&s), &node("a", &[("zone", "z2")], &[])).should_run);
        assert!(!fit(Some(&s), &node("a", &[("zone", "z1")], &[])).should_run);
        // A template pinned to a node name runs only there.
        let mut s = spec();
        s.node_name = Some("a".into());
        assert!(fit(Some(&s), &node("a", &[], &[])).should_run);
        assert!(!fit(Some(&s), &node("b", &[], &[])).should_run);
    }

    #[test]
    fn taints_against_tolerations() {
        // Untolerated NoSchedule: no new pod, an existing one stays.
        let tainted = node("t", &[], &[("dedicated", "NoSchedule")]);
        assert_eq!(
            fit(Some(&spec()), &tainted),
            Fit {
                should_run: false,
                should_continue_running: true
            }
        );
        // Untolerated NoExecute: neither.
        let evicting = node("t", &[], &[("dedicated", "NoExecute")]);
        assert_eq!(
            fit(Some(&spec()), &evicting),
            Fit {
                should_run: false,
                should_continue_running: false
            }
        );
        // PreferNoSchedule is no obstacle.
        assert_eq!(
            fit(Some(&spec()), &node("p", &[], &[("x", "PreferNoSchedule")])),
            yes()
        );
        // The taints every daemon pod tolerates.
        let unschedulable = node(
            "u",
            &[],
            &[
                ("node.kubernetes.io/unschedulable", "NoSchedule"),
                ("node.kubernetes.io/not-ready", "NoExecute"),
                ("node.kubernetes.io/disk-pressure", "NoSchedule"),
            ],
        );
        assert_eq!(fit(Some(&spec()), &unschedulable), yes());
        // network-unavailable only with hostNetwork.
        let no_network = node(
            "n",
            &[],
            &[("node.kubernetes.io/network-unavailable", "NoSchedule")],
        );
        assert!(!fit(Some(&spec()), &no_network).should_run);
        let mut host = spec();
        host.host_network = Some(true);
        assert!(fit(Some(&host), &no_network).should_run);
        // The template's own toleration.
        let mut tolerant = spec();
        tolerant.tolerations = Some(vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Exists".into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        }]);
        assert_eq!(fit(Some(&tolerant), &tainted), yes());
        assert!(!fit(Some(&tolerant), &evicting).should_run);
    }

    #[test]
    fn toleration_matching() {
        let taint = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        let t = |key: &str, op: &str, value: &str, effect: &str| Toleration {
            key: Some(key.into()),
            operator: Some(op.into()),
            value: Some(value.into()),
            effect: Some(effect.into()),
            ..Toleration::default()
        };
        assert!(tolerates(&t("k", "Equal", "v", "NoSchedule"), &taint));
        assert!(tolerates(&t("k", "Equal", "v", ""), &taint));
        assert!(!tolerates(&t("k", "Equal", "w", "NoSchedule"), &taint));
        assert!(!tolerates(&t("k", "Exists", "", "NoExecute"), &taint));
        assert!(
            tolerates(&t("", "Exists", "", ""), &taint),
            "tolerates everything"
        );
    }

    #[test]
    fn target_node_from_binding_or_affinity() {
        let mut pod = Pod::default();
        assert_eq!(target_node(&pod), None);
        let mut s = spec();
        s.affinity = super::super::pod::node_name_affinity(None, "n2");
        pod.spec = Some(s);
        assert_eq!(target_node(&pod).as_deref(), Some("n2"));
        pod.spec.as_mut().expect("spec").node_name = Some("n3".into());
        assert_eq!(target_node(&pod).as_deref(), Some("n3"));
    }
}
