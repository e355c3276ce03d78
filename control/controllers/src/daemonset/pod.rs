//! The pod a DaemonSet stamps out for a node (upstream `CreatePodTemplate`,
//! `AddOrUpdateDaemonPodTolerations`, `ReplaceDaemonSetPodNodeNameNodeAffinity`), and which of
//! its pods are up to date (`IsPodUpdated`).
//!
//! Pods are created unbound, as upstream since 1.12: the required node affinity
//! `matchFields metadata.name In [<node>]` leaves the scheduler exactly one node, so the
//! scheduler's resource and port checks and preemption apply to daemon pods too.
//!
//! Every daemon pod tolerates the taints that mark a node's trouble rather than its purpose: a
//! daemon (a log shipper, the pod network) must keep running on a node that is not ready, under
//! pressure or cordoned, and must not be evicted from it.
//!
//! Pods carry `controller-revision-hash` (the revision of their template, `history.rs`) and
//! `pod-template-generation`. Upstream takes the generation from the annotation
//! `deprecated.daemonset.template.generation` its API server keeps (bumped only on template
//! changes); skiff's API server does not write it, so `metadata.generation` stands in. Either
//! names exactly one template per value, so the comparison stays sound.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec,
    PodTemplateSpec, Toleration,
};

pub const HASH_LABEL: &str = "controller-revision-hash";
pub const GENERATION_LABEL: &str = "pod-template-generation";
const GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

/// The tolerations every daemon pod gets, in upstream's order: (key, effect).
const DEFAULT_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];
const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

fn exists(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Toleration::default()
    }
}

/// Upstream `AddOrUpdateTolerationInPodSpec`: a toleration with the same key, operator, value
/// and effect is replaced (so a template's `tolerationSeconds` on these goes), else appended.
fn add_or_update(spec: &mut PodSpec, toleration: Toleration) {
    let same = |t: &Toleration| {
        t.key.as_deref().unwrap_or_default() == toleration.key.as_deref().unwrap_or_default()
            && t.effect.as_deref().unwrap_or_default()
                == toleration.effect.as_deref().unwrap_or_default()
            && t.operator.as_deref().unwrap_or_default()
                == toleration.operator.as_deref().unwrap_or_default()
            && t.value.as_deref().unwrap_or_default()
                == toleration.value.as_deref().unwrap_or_default()
    };
    let list = spec.tolerations.get_or_insert_with(Vec::new);
    match list.iter_mut().find(|t| same(t)) {
        Some(existing) => *existing = toleration,
        None => list.push(toleration),
    }
}

/// Upstream `AddOrUpdateDaemonPodTolerations`.
pub fn add_default_tolerations(spec: &mut PodSpec) {
    for (key, effect) in DEFAULT_TOLERATIONS {
        add_or_update(spec, exists(key, effect));
    }
    if spec.host_network == Some(true) {
        add_or_update(spec, exists(NETWORK_UNAVAILABLE, "NoSchedule"));
    }
}

/// Upstream `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity becomes the
/// single term `matchFields metadata.name In [node]`. The other required terms go too — the
/// controller has already checked that the node fits them — while preferred terms and pod
/// (anti-)affinity stay.
pub fn node_name_affinity(affinity: Option<Affinity>, node: &str) -> Option<Affinity> {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.to_string()]),
            }]),
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default)
        .required_during_scheduling_ignored_during_execution = Some(selector);
    Some(affinity)
}

/// The template generation pods are labelled with (see the module doc).
pub fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(GENERATION_ANNOTATION))
        .and_then(|g| g.parse().ok())
        .or(ds.metadata.generation)
}

/// Upstream `CreatePodTemplate`: the DaemonSet's template with the default tolerations and the
/// generation and hash labels.
pub fn template(ds: &DaemonSet, generation: Option<i64>, hash: &str) -> PodTemplateSpec {
    let mut template = ds.spec.template.clone();
    add_default_tolerations(template.spec.get_or_insert_with(PodSpec::default));
    let labels = template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new);
    if let Some(generation) = generation {
        labels.insert(GENERATION_LABEL.into(), generation.to_string());
    }
    if !hash.is_empty() {
        labels.insert(HASH_LABEL.into(), hash.into());
    }
    template
}

/// `template` for one node: its node affinity pins the pod there.
pub fn for_node(template: &PodTemplateSpec, node: &str) -> PodTemplateSpec {
    let mut template = template.clone();
    let spec = template.spec.get_or_insert_with(PodSpec::default);
    spec.affinity = node_name_affinity(spec.affinity.take(), node);
    template
}

/// Upstream `IsPodUpdated`: the pod has the current hash, or the current template generation.
pub fn is_updated(pod: &Pod, hash: &str, generation: Option<i64>) -> bool {
    let labels = pod.metadata.labels.as_ref();
    let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    let generation_matches =
        generation.is_some_and(|g| label(GENERATION_LABEL) == Some(g.to_string().as_str()));
    let hash_matches = !hash.is_empty() && label(HASH_LABEL) == Some(hash);
    hash_matches || generation_matches
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::DaemonSetSpec;
    use k8s_openapi::api::core::v1::{PodAffinity, PreferredSchedulingTerm};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn default_tolerations_added_once() {
        let mut spec = PodSpec {
            tolerations: Some(vec![
                Toleration {
                    key: Some("node.kubernetes.io/not-ready".into()),
                    operator: Some("Exists".into()),
                    effect: Some("NoExecute".into()),
                    toleration_seconds: Some(300),
                    ..Toleration::default()
                },
                exists("dedicated", "NoSchedule"),
            ]),
            ..PodSpec::default()
        };
        add_default_tolerations(&mut spec);
        add_default_tolerations(&mut spec);
        let list = spec.tolerations.as_ref().expect("tolerations");
        let keys: Vec<&str> = list.iter().filter_map(|t| t.key.as_deref()).collect();
        assert_eq!(
            keys,
            [
                "node.kubernetes.io/not-ready",
                "dedicated",
                "node.kubernetes.io/unreachable",
                "node.kubernetes.io/disk-pressure",
                "node.kubernetes.io/memory-pressure",
                "node.kubernetes.io/pid-pressure",
                "node.kubernetes.io/unschedulable",
            ]
        );
        assert_eq!(
            list[0].toleration_seconds, None,
            "replaced: no tolerationSeconds"
        );
        let mut host = PodSpec {
            host_network: Some(true),
            ..PodSpec::default()
        };
        add_default_tolerations(&mut host);
        assert_eq!(
            host.tolerations
                .as_ref()
                .and_then(|t| t.last())
                .and_then(|t| t.key.as_deref()),
            Some(NETWORK_UNAVAILABLE)
        );
    }

    #[test]
    fn node_affinity_is_replaced() {
        let fresh = node_name_affinity(None, "n1").expect("affinity");
        let terms = &fresh
            .node_affinity
            .as_ref()
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .expect("required")
            .node_selector_terms;
        assert_eq!(terms.len(), 1);
        let field = &terms[0].match_fields.as_ref().expect("fields")[0];
        assert_eq!(
            (
                field.key.as_str(),
                field.operator.as_str(),
                field.values.as_deref()
            ),
            ("metadata.name", "In", Some(&["n1".to_string()][..]))
        );
        // Existing required terms (fields or labels) are replaced; the rest stays.
        let existing = Affinity {
            node_affinity: Some(NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: vec![
                        NodeSelectorTerm {
                            match_expressions: None,
                            match_fields: Some(vec![NodeSelectorRequirement {
                                key: "metadata.name".into(),
                                operator: "In".into(),
                                values: Some(vec!["old".into()]),
                            }]),
                        },
                        NodeSelectorTerm::default(),
                    ],
                }),
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    PreferredSchedulingTerm::default(),
                ]),
            }),
            pod_affinity: Some(PodAffinity::default()),
            pod_anti_affinity: None,
        };
        let replaced = node_name_affinity(Some(existing), "n2").expect("affinity");
        let na = replaced.node_affinity.as_ref().expect("node affinity");
        let terms = &na
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .expect("required")
            .node_selector_terms;
        assert_eq!(terms.len(), 1);
        assert_eq!(
            terms[0].match_fields.as_ref().expect("fields")[0]
                .values
                .as_deref(),
            Some(&["n2".to_string()][..])
        );
        assert!(na
            .preferred_during_scheduling_ignored_during_execution
            .is_some());
        assert!(replaced.pod_affinity.is_some());
    }

    #[test]
    fn template_labels_and_updated_pods() {
        let ds = DaemonSet {
            metadata: ObjectMeta {
                generation: Some(3),
                ..ObjectMeta::default()
            },
            spec: DaemonSetSpec {
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some([("app".to_string(), "agent".to_string())].into()),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec::default()),
                },
                ..DaemonSetSpec::default()
            },
            status: None,
        };
        let generation = template_generation(&ds);
        assert_eq!(generation, Some(3));
        let t = template(&ds, generation, "abc");
        let labels = t
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .expect("labels");
        assert_eq!(labels.get(HASH_LABEL).map(String::as_str), Some("abc"));
        assert_eq!(labels.get(GENERATION_LABEL).map(String::as_str), Some("3"));
        assert_eq!(labels.get("app").map(String::as_str), Some("agent"));
        assert_eq!(
            t.spec
                .as_ref()
                .and_then(|s| s.tolerations.as_ref())
                .map(Vec::len),
            Some(6)
        );
        let pinned = for_node(&t, "n1");
        assert!(pinned
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .is_some());

        let pod = |labels: &[(&str, &str)]| Pod {
            metadata: ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        assert!(is_updated(&pod(&[(HASH_LABEL, "abc")]), "abc", Some(4)));
        assert!(is_updated(&pod(&[(GENERATION_LABEL, "4")]), "new", Some(4)));
        assert!(!is_updated(
            &pod(&[(HASH_LABEL, "old"), (GENERATION_LABEL, "3")]),
            "abc",
            Some(4)
        ));
        assert!(!is_updated(&pod(&[]), "", None));
    }
}
