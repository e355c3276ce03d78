//! A StatefulSet pod's identity (upstream `stateful_set_utils.go`): its name `<set>-<ordinal>`,
//! the labels naming it, its stable hostname, and the claims `<template>-<set>-<ordinal>` it
//! mounts.
//!
//! Why names and not generateName: the ordinal *is* the identity. `web-1` keeps its hostname
//! (`web-1.<serviceName>` in DNS) and its volumes (`www-web-1`) across restarts, rescheduling
//! and updates, which is what databases and quorum systems rely on. Everything here derives
//! from the pod's name, so a pod can be rebuilt from nothing but its ordinal.
//!
//! - ordinals come from the name (`(.*)-([0-9]+)$`, as upstream's regex), and run from
//!   `spec.ordinals.start` to `start + replicas - 1`;
//! - labels `statefulset.kubernetes.io/pod-name` and `apps.kubernetes.io/pod-index` (upstream
//!   `updateIdentity`; both can be fixed on a live pod), and `controller-revision-hash` naming
//!   the ControllerRevision the pod was made from;
//! - `spec.hostname` = pod name and `spec.subdomain` = `spec.serviceName`, set only at creation
//!   (upstream `initIdentity`: they are immutable on a pod);
//! - a volume per claim template, named like the template and pointing at the pod's claim
//!   (upstream `updateStorage`), replacing a template volume of the same name.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use kube::ResourceExt;

use crate::controller_ref::owner_ref;
use crate::pods;

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The pod's revision: the name of its ControllerRevision (upstream `StatefulSetRevisionLabel`).
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// `(parent, ordinal)` from a pod name (upstream `getParentNameAndOrdinal`): the text before the
/// last `-` and the decimal number after it, which must fit an int32.
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i32)> {
    let (parent, digits) = name.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, digits.parse().ok()?))
}

/// The pod's ordinal, if its name has one.
pub fn ordinal(pod: &Pod) -> Option<i32> {
    parent_and_ordinal(pod.metadata.name.as_deref()?).map(|(_, o)| o)
}

/// Upstream `isMemberOf`: the name says the pod belongs to this set.
pub fn is_member_of(set: &StatefulSet, pod: &Pod) -> bool {
    pod.metadata
        .name
        .as_deref()
        .and_then(parent_and_ordinal)
        .is_some_and(|(parent, _)| parent == set.name_any())
}

/// `<set>-<ordinal>`.
pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set.name_any())
}

/// `<template>-<set>-<ordinal>` (upstream `getPersistentVolumeClaimName`).
pub fn claim_name(set: &StatefulSet, template: &PersistentVolumeClaim, ordinal: i32) -> String {
    format!("{}-{}-{ordinal}", template.name_any(), set.name_any())
}

pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec.replicas.unwrap_or(1).max(0)
}

/// The first ordinal (`spec.ordinals.start`, default 0).
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .ordinals
        .as_ref()
        .and_then(|o| o.start)
        .unwrap_or(0)
}

/// The last ordinal of the wanted range (one below the start when there are no replicas).
pub fn end_ordinal(set: &StatefulSet) -> i32 {
    start_ordinal(set) + replicas(set) - 1
}

/// Upstream `podInOrdinalRange`: the pod's ordinal is one the set wants now.
pub fn in_ordinal_range(set: &StatefulSet, pod: &Pod) -> bool {
    ordinal(pod).is_some_and(|o| o >= start_ordinal(set) && o <= end_ordinal(set))
}

pub fn service_name(set: &StatefulSet) -> String {
    set.spec.service_name.clone().unwrap_or_default()
}

pub fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .volume_claim_templates
        .as_deref()
        .unwrap_or_default()
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// The pod's revision name (empty when unlabelled, as upstream `getPodRevision`).
pub fn revision(pod: &Pod) -> &str {
    label(pod, REVISION_LABEL).unwrap_or_default()
}

/// Upstream `identityMatches`: the name is this set's for the pod's ordinal, the namespace is
/// the set's, and the pod-name label is right.
pub fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let Some(name) = pod.metadata.name.as_deref() else {
        return false;
    };
    let Some((parent, ordinal)) = parent_and_ordinal(name) else {
        return false;
    };
    parent == set.name_any()
        && name == pod_name(set, ordinal)
        && pod.metadata.namespace == set.metadata.namespace
        && label(pod, POD_NAME_LABEL) == Some(name)
}

/// Upstream `updateIdentity`: the labels naming the pod.
pub fn update_identity(set: &StatefulSet, pod: &mut Pod) {
    let Some(ordinal) = ordinal(pod) else {
        return;
    };
    let name = pod_name(set, ordinal);
    pod.metadata.namespace = set.metadata.namespace.clone();
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    pod.metadata.name = Some(name);
}

/// Upstream `storageMatches`: every claim template has a volume pointing at the pod's claim.
pub fn storage_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let Some(ordinal) = ordinal(pod) else {
        return false;
    };
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    claim_templates(set).iter().all(|template| {
        volumes
            .iter()
            .find(|v| v.name == template.name_any())
            .and_then(|v| v.persistent_volume_claim.as_ref())
            .is_some_and(|c| c.claim_name == claim_name(set, template, ordinal))
    })
}

/// Upstream `updateStorage`: the claim volumes first (in template order), then the pod's other
/// volumes.
pub fn update_storage(set: &StatefulSet, pod: &mut Pod) {
    let Some(ordinal) = ordinal(pod) else {
        return;
    };
    let templates = claim_templates(set);
    if templates.is_empty() {
        return;
    }
    let spec = pod.spec.get_or_insert_with(Default::default);
    let current = spec.volumes.take().unwrap_or_default();
    let mut volumes: Vec<Volume> = templates
        .iter()
        .map(|t| Volume {
            name: t.name_any(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(set, t, ordinal),
                read_only: None,
            }),
            ..Volume::default()
        })
        .collect();
    volumes.extend(
        current
            .into_iter()
            .filter(|v| templates.iter().all(|t| t.name_any() != v.name)),
    );
    spec.volumes = Some(volumes);
}

/// The pod for `ordinal` from `template` at revision `revision` (upstream `newStatefulSetPod`
/// and `setPodRevision`): the template's pod with a controllerRef to the set, its identity,
/// hostname and subdomain, and its claim volumes.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, revision: &str, ordinal: i32) -> Pod {
    let namespace = set.namespace().unwrap_or_default();
    let mut pod = pods::from_template(template, &namespace, &set.name_any(), owner_ref(set));
    let name = pod_name(set, ordinal);
    pod.metadata.name = Some(name.clone());
    update_identity(set, &mut pod);
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(name);
    let subdomain = service_name(set);
    spec.subdomain = (!subdomain.is_empty()).then_some(subdomain);
    update_storage(set, &mut pod);
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION_LABEL.into(), revision.to_string());
    pod
}

#[cfg(test)]
pub mod testing {
    //! StatefulSets for the unit tests.
    use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetOrdinals, StatefulSetSpec};
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

    pub fn set(name: &str, replicas: i32, start: Option<i32>) -> StatefulSet {
        let labels: std::collections::BTreeMap<String, String> =
            [("app".to_string(), name.to_string())].into();
        StatefulSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                generation: Some(1),
                ..ObjectMeta::default()
            },
            spec: StatefulSetSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(labels.clone()),
                    ..LabelSelector::default()
                },
                service_name: Some("nginx".into()),
                ordinals: start.map(|s| StatefulSetOrdinals { start: Some(s) }),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "nginx".into(),
                            image: Some("nginx:1".into()),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    }),
                },
                ..StatefulSetSpec::default()
            },
            status: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::set;
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn ordinals_parse_as_upstream() {
        assert_eq!(parent_and_ordinal("web-0"), Some(("web", 0)));
        assert_eq!(parent_and_ordinal("my-web-12"), Some(("my-web", 12)));
        assert_eq!(parent_and_ordinal("web"), None);
        assert_eq!(parent_and_ordinal("web-"), None);
        assert_eq!(parent_and_ordinal("web-1a"), None);
        assert_eq!(parent_and_ordinal("web-99999999999"), None, "beyond int32");
    }

    #[test]
    fn the_range_starts_at_spec_ordinals_start() {
        let s = set("web", 3, Some(5));
        assert_eq!((start_ordinal(&s), end_ordinal(&s)), (5, 7));
        let mut p = Pod::default();
        for (name, inside) in [
            ("web-4", false),
            ("web-5", true),
            ("web-7", true),
            ("web-8", false),
        ] {
            p.metadata.name = Some(name.into());
            assert_eq!(in_ordinal_range(&s, &p), inside, "{name}");
        }
        assert_eq!(end_ordinal(&set("web", 0, None)), -1);
    }

    #[test]
    fn new_pods_carry_their_identity() {
        let mut s = set("web", 3, None);
        s.spec.volume_claim_templates = Some(vec![PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("www".into()),
                ..ObjectMeta::default()
            },
            ..PersistentVolumeClaim::default()
        }]);
        let template = s.spec.template.clone();
        let pod = new_pod(&s, &template, "web-abc", 1);
        assert_eq!(pod.metadata.name.as_deref(), Some("web-1"));
        assert_eq!(label(&pod, POD_NAME_LABEL), Some("web-1"));
        assert_eq!(label(&pod, POD_INDEX_LABEL), Some("1"));
        assert_eq!(label(&pod, "app"), Some("web"));
        assert_eq!(revision(&pod), "web-abc");
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.hostname.as_deref(), Some("web-1"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let volume = &spec.volumes.as_ref().expect("volumes")[0];
        assert_eq!(volume.name, "www");
        assert_eq!(
            volume
                .persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str()),
            Some("www-web-1")
        );
        let owner = &pod.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("StatefulSet", Some(true))
        );
        assert!(identity_matches(&s, &pod));
        assert!(storage_matches(&s, &pod));
        assert!(is_member_of(&s, &pod));

        // A lost label is an identity to fix; another set's pod is not a member.
        let mut broken = pod.clone();
        broken
            .metadata
            .labels
            .as_mut()
            .expect("labels")
            .remove(POD_NAME_LABEL);
        assert!(!identity_matches(&s, &broken));
        update_identity(&s, &mut broken);
        assert!(identity_matches(&s, &broken));
        assert!(!is_member_of(&set("db", 1, None), &pod));
    }
}
