//! A pod's PersistentVolumeClaims (upstream `getPersistentVolumeClaims`,
//! `claimOwnerMatchesSetAndPod`, `updateClaimOwnerRefForSetAndPod`, `hasStaleOwnerRef`).
//!
//! Why claims outlive pods: a StatefulSet's storage belongs to the ordinal, not to the pod, so
//! `www-web-1` is created before `web-1` and survives its deletion, rescheduling and update;
//! the next `web-1` mounts the same data. Claims are never deleted by this controller. What
//! `persistentVolumeClaimRetentionPolicy` asks for is expressed as ownerReferences, and the
//! garbage collector does the deleting:
//! - `whenDeleted: Delete` — the claim lists the StatefulSet as owner, so it goes with the set;
//! - `whenScaled: Delete` — the claim of an ordinal above the range (condemned by a scale down)
//!   lists its pod as owner, so it goes with that pod (and loses the set's reference).
//!
//! Both references are plain (not controller) references, as upstream's. A claim whose
//! controller is something else is left alone.
//!
//! A claim still owned by an *earlier* pod of the same name (scaled down, not yet collected)
//! is stale: the new pod must wait for it to go rather than mount data about to be deleted.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};

use super::identity::{claim_name, claim_templates, in_ordinal_range, ordinal};

/// What the retention policy asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    pub delete_when_deleted: bool,
    pub delete_when_scaled: bool,
}

pub fn policy(set: &StatefulSet) -> Policy {
    let p = set.spec.persistent_volume_claim_retention_policy.as_ref();
    let delete = |v: Option<&String>| v.map(String::as_str) == Some("Delete");
    Policy {
        delete_when_deleted: delete(p.and_then(|p| p.when_deleted.as_ref())),
        delete_when_scaled: delete(p.and_then(|p| p.when_scaled.as_ref())),
    }
}

/// The claims the pod needs, created from the set's templates (upstream
/// `getPersistentVolumeClaims`): named `<template>-<set>-<ordinal>`, in the set's namespace,
/// labelled with the template's labels and the set's `matchLabels`, owned as the policy says
/// for a pod in range.
pub fn claims_for(set: &StatefulSet, pod: &Pod) -> Vec<PersistentVolumeClaim> {
    let Some(ordinal) = ordinal(pod) else {
        return Vec::new();
    };
    let match_labels = set.spec.selector.match_labels.clone().unwrap_or_default();
    claim_templates(set)
        .iter()
        .map(|template| {
            let mut claim = template.clone();
            claim.metadata.name = Some(claim_name(set, template, ordinal));
            claim.metadata.namespace = set.metadata.namespace.clone();
            let labels = claim.metadata.labels.get_or_insert_with(BTreeMap::new);
            labels.extend(match_labels.clone());
            claim.metadata.resource_version = None;
            claim.metadata.uid = None;
            claim.status = None;
            update_owners(&mut claim, set, pod);
            claim
        })
        .collect()
}

fn reference<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid: owner.uid().unwrap_or_default(),
        controller: None,
        block_owner_deletion: None,
    }
}

fn has_ref(claim: &PersistentVolumeClaim, uid: Option<&str>) -> bool {
    let Some(uid) = uid.filter(|u| !u.is_empty()) else {
        return false;
    };
    claim.owner_references().iter().any(|r| r.uid == uid)
}

fn set_ref(claim: &mut PersistentVolumeClaim, owner: OwnerReference) -> bool {
    if owner.uid.is_empty() || has_ref(claim, Some(&owner.uid)) {
        return false;
    }
    claim
        .metadata
        .owner_references
        .get_or_insert_with(Vec::new)
        .push(owner);
    true
}

fn remove_ref(claim: &mut PersistentVolumeClaim, uid: Option<&str>) -> bool {
    if !has_ref(claim, uid) {
        return false;
    }
    if let Some(refs) = claim.metadata.owner_references.as_mut() {
        refs.retain(|r| Some(r.uid.as_str()) != uid);
    }
    true
}

/// (set owner wanted, pod owner wanted) for the claim of `pod`.
fn wanted(set: &StatefulSet, pod: &Pod) -> (bool, bool) {
    let p = policy(set);
    let scaled_down = !in_ordinal_range(set, pod);
    match (p.delete_when_scaled, p.delete_when_deleted) {
        (false, false) => (false, false),
        (false, true) => (true, false),
        (true, false) => (false, scaled_down),
        (true, true) => (!scaled_down, scaled_down),
    }
}

/// Upstream `claimOwnerMatchesSetAndPod`.
pub fn owners_match(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    let (want_set, want_pod) = wanted(set, pod);
    has_ref(claim, set.metadata.uid.as_deref()) == want_set
        && (pod.metadata.uid.is_none() || has_ref(claim, pod.metadata.uid.as_deref()) == want_pod)
}

/// Upstream `updateClaimOwnerRefForSetAndPod`: true when the claim changed.
pub fn update_owners(claim: &mut PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    let (want_set, want_pod) = wanted(set, pod);
    let mut changed = if want_set {
        set_ref(claim, reference(set))
    } else {
        remove_ref(claim, set.metadata.uid.as_deref())
    };
    changed |= if want_pod {
        set_ref(claim, reference(pod))
    } else {
        remove_ref(claim, pod.metadata.uid.as_deref())
    };
    changed
}

/// Upstream `hasUnexpectedController`: the claim's controller is neither the set nor the pod.
pub fn has_unexpected_controller(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
) -> bool {
    claim
        .owner_references()
        .iter()
        .filter(|r| r.controller == Some(true))
        .any(|r| {
            Some(r.uid.as_str()) != set.metadata.uid.as_deref()
                && Some(r.uid.as_str()) != pod.metadata.uid.as_deref()
        })
}

/// Upstream `hasStaleOwnerRef`: the claim is owned by a pod of this name with another uid
/// (the pod about to be created has none yet, so any such reference is stale).
pub fn has_stale_owner(claim: &PersistentVolumeClaim, pod: &Pod) -> bool {
    claim.owner_references().iter().any(|r| {
        r.kind == "Pod"
            && Some(r.name.as_str()) == pod.metadata.name.as_deref()
            && Some(r.uid.as_str()) != pod.metadata.uid.as_deref()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statefulset::identity::testing::set;
    use k8s_openapi::api::apps::v1::StatefulSetPersistentVolumeClaimRetentionPolicy;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn with_claims(replicas: i32, when_deleted: &str, when_scaled: &str) -> StatefulSet {
        let mut s = set("web", replicas, None);
        let spec = &mut s.spec;
        spec.volume_claim_templates = Some(vec![PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("www".into()),
                labels: Some([("tier".to_string(), "data".to_string())].into()),
                ..ObjectMeta::default()
            },
            ..PersistentVolumeClaim::default()
        }]);
        spec.persistent_volume_claim_retention_policy =
            Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some(when_deleted.into()),
                when_scaled: Some(when_scaled.into()),
            });
        s
    }

    fn pod(name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    fn owners(claim: &PersistentVolumeClaim) -> Vec<String> {
        claim
            .owner_references()
            .iter()
            .map(|r| r.kind.clone())
            .collect()
    }

    #[test]
    fn claims_are_named_and_labelled_for_the_ordinal() {
        let s = with_claims(2, "Retain", "Retain");
        let claims = claims_for(&s, &pod("web-1"));
        assert_eq!(claims.len(), 1);
        assert_eq!(claims[0].metadata.name.as_deref(), Some("www-web-1"));
        assert_eq!(claims[0].metadata.namespace.as_deref(), Some("default"));
        let labels = claims[0].labels();
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(labels.get("tier").map(String::as_str), Some("data"));
        assert!(owners(&claims[0]).is_empty(), "Retain: no owners");
    }

    #[test]
    fn retention_policy_becomes_owner_references() {
        // whenDeleted Delete: the set owns the claim.
        let s = with_claims(2, "Delete", "Retain");
        let claim = &claims_for(&s, &pod("web-0"))[0];
        assert_eq!(owners(claim), ["StatefulSet"]);
        assert!(owners_match(claim, &s, &pod("web-0")));

        // whenScaled Delete: a condemned ordinal's claim passes to its pod.
        let s = with_claims(1, "Delete", "Delete");
        let mut claim = claims_for(&s, &pod("web-0"))[0].clone();
        assert_eq!(owners(&claim), ["StatefulSet"]);
        let condemned = pod("web-1");
        let mut condemned_claim =
            claims_for(&with_claims(2, "Delete", "Delete"), &condemned)[0].clone();
        assert!(!owners_match(&condemned_claim, &s, &condemned));
        assert!(update_owners(&mut condemned_claim, &s, &condemned));
        assert_eq!(owners(&condemned_claim), ["Pod"]);
        assert!(owners_match(&condemned_claim, &s, &condemned));
        assert!(
            !update_owners(&mut claim, &s, &pod("web-0")),
            "already right"
        );

        // Back to Retain: both references go.
        let retain = with_claims(1, "Retain", "Retain");
        assert!(update_owners(&mut condemned_claim, &retain, &condemned));
        assert!(owners(&condemned_claim).is_empty());
    }

    #[test]
    fn stale_and_foreign_owners() {
        let s = with_claims(2, "Retain", "Delete");
        let old = pod("web-1");
        let mut claim = claims_for(&s, &old)[0].clone();
        update_owners(&mut claim, &with_claims(1, "Retain", "Delete"), &old);
        let mut fresh = pod("web-1");
        fresh.metadata.uid = None;
        assert!(has_stale_owner(&claim, &fresh));
        assert!(!has_stale_owner(&claim, &old));
        claim.metadata.owner_references = Some(vec![OwnerReference {
            kind: "Other".into(),
            uid: "x".into(),
            controller: Some(true),
            ..OwnerReference::default()
        }]);
        assert!(has_unexpected_controller(&claim, &s, &old));
    }
}
