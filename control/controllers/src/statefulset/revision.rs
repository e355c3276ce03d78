//! A StatefulSet's ControllerRevisions (upstream `newRevision`, `ApplyRevision`,
//! `getStatefulSetRevisions`, `truncateHistory` and `history.HashControllerRevision`), on the
//! shared `history.rs`.
//!
//! Why two revisions: a StatefulSet updates one pod at a time (or only above a partition), so
//! for a while pods of two templates run side by side. `status.currentRevision` names the
//! revision the not-yet-updated pods run, `status.updateRevision` the one the set asks for now;
//! a pod recreated below the partition must come back at the *current* revision, so the
//! controller keeps both templates at hand (`template_of`) rather than only the live spec.
//!
//! Unlike the DaemonSet (which hashes the template like a Deployment and labels revisions
//! `controller-revision-hash`), upstream's StatefulSet hashes the revision's `data` bytes with
//! FNV-1 (not FNV-1a) 32, then the collision count as decimal text (always, "0" included),
//! and labels the revision `controller.kubernetes.io/hash`; the pods' `controller-revision-hash`
//! label holds the revision's *name*. A name taken by a revision with other data raises the
//! collision count and the create is retried under the next name, in the same sync.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use crate::controller_ref::owner_ref;
use crate::deployment::hash::safe_encode;
use crate::history;

/// Upstream `history.ControllerRevisionHashLabel`.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// FNV-1 32 (Go's `fnv.New32`: multiply, then xor).
pub fn fnv32(mut hash: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        hash = hash.wrapping_mul(FNV_PRIME);
        hash ^= u32::from(*b);
    }
    hash
}

/// Upstream `HashControllerRevision`: the data's JSON bytes, then the collision count.
pub fn hash(data: &Value, collision_count: i32) -> String {
    // Serializing a JSON value cannot fail; serde_json's map writes keys sorted, as Go's
    // json.Marshal of a map.
    let bytes = serde_json::to_vec(data).unwrap_or_default();
    let mut sum = fnv32(FNV_OFFSET, &bytes);
    sum = fnv32(sum, collision_count.to_string().as_bytes());
    safe_encode(&sum.to_string())
}

fn template(set: &StatefulSet) -> PodTemplateSpec {
    set.spec.template.clone()
}

/// The revision data restoring the set's template (upstream `getPatch`).
pub fn data(set: &StatefulSet) -> Value {
    history::template_patch(&template(set))
}

/// Upstream `newRevision`: named `<set>-<hash>`, labelled with the template's labels and the
/// hash, annotated with the set's annotations (so `kubernetes.io/change-cause` shows in
/// `kubectl rollout history`), owned by the set.
pub fn new_revision(set: &StatefulSet, number: i64, collision_count: i32) -> ControllerRevision {
    let data = data(set);
    let hash = hash(&data, collision_count);
    let template = template(set);
    history::new_revision(
        owner_ref(set),
        set.metadata.namespace.as_deref().unwrap_or_default(),
        template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
        set.metadata.annotations.as_ref(),
        HASH_LABEL,
        &hash,
        data,
        number,
    )
}

/// The pod template a revision restores (upstream `ApplyRevision`, which patches the set with
/// the revision's data; only the template is in it). `None` when the data holds no template.
pub fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision.data.0.pointer("/spec/template")?.clone();
    if let Some(object) = template.as_object_mut() {
        object.remove("$patch");
    }
    serde_json::from_value(template).ok()
}

/// What `getStatefulSetRevisions` decides before any request.
#[derive(Debug, PartialEq)]
pub enum UpdateRevision {
    /// The latest revision already holds the template.
    Latest(Arc<ControllerRevision>),
    /// An older revision holds it (an undo): it gets the next number.
    Renumber(Arc<ControllerRevision>, i64),
    /// None holds it: create one with this number.
    Create(i64),
}

/// Upstream `getStatefulSetRevisions` up to the write; `revisions` sorted oldest first.
pub fn choose_update(revisions: &[Arc<ControllerRevision>], data: &Value) -> UpdateRevision {
    let next = revisions.last().map_or(1, |r| history::number(r) + 1);
    let equal: Vec<&Arc<ControllerRevision>> = revisions
        .iter()
        .filter(|r| history::matches(r, data))
        .collect();
    match (equal.last(), revisions.last()) {
        (Some(found), Some(latest)) if Arc::ptr_eq(found, latest) => {
            UpdateRevision::Latest(latest.clone())
        }
        (Some(found), _) => UpdateRevision::Renumber((*found).clone(), next),
        (None, _) => UpdateRevision::Create(next),
    }
}

/// The revisions to delete (upstream `truncateHistory`): those no pod runs and that are neither
/// the current nor the update revision, oldest first, beyond `revisionHistoryLimit`.
pub fn to_truncate<'a>(
    revisions: &[Arc<ControllerRevision>],
    live: impl IntoIterator<Item = &'a str>,
    limit: i32,
) -> Vec<Arc<ControllerRevision>> {
    let live: HashSet<&str> = live.into_iter().collect();
    let historic: Vec<Arc<ControllerRevision>> = revisions
        .iter()
        .filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or_default()))
        .cloned()
        .collect();
    if limit < 0 {
        return Vec::new();
    }
    history::to_truncate(historic, limit, |_| false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statefulset::identity::testing::set;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use kube::ResourceExt;

    fn image(s: &mut StatefulSet, image: &str) {
        s.spec.template.spec.as_mut().expect("pod spec").containers[0].image = Some(image.into());
    }

    fn revision(s: &StatefulSet, name: &str, number: i64) -> Arc<ControllerRevision> {
        let mut r = new_revision(s, number, 0);
        r.metadata.name = Some(name.into());
        Arc::new(r)
    }

    #[test]
    fn fnv1_reference_vectors() {
        // FNV-1 32 of "" and "a" (the spec's test suite); FNV-1a of "a" is 0xe40c292c.
        assert_eq!(fnv32(FNV_OFFSET, b""), 0x811c9dc5);
        assert_eq!(fnv32(FNV_OFFSET, b"a"), 0x050c5d7e);
        assert_eq!(fnv32(FNV_OFFSET, b"foobar"), 0x31f0b262);
    }

    #[test]
    fn revisions_are_named_by_the_data_hash() {
        let s = set("web", 3, None);
        let r = new_revision(&s, 1, 0);
        let hash = r.labels().get(HASH_LABEL).cloned().expect("hash label");
        assert_eq!(r.name_any(), format!("web-{hash}"));
        assert!(hash
            .bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)));
        assert_eq!(r.labels().get("app").map(String::as_str), Some("web"));
        assert_eq!(r.revision, Some(1));
        // Another collision count, another name; same data.
        let other = new_revision(&s, 1, 1);
        assert_ne!(other.name_any(), r.name_any());
        assert!(history::matches(&other, &data(&s)));
        // The revision gives the template back.
        assert_eq!(
            template_of(&r)
                .and_then(|t| t.spec)
                .map(|p| p.containers[0].image.clone()),
            Some(Some("nginx:1".to_string()))
        );
    }

    #[test]
    fn update_revision_is_latest_renumbered_or_new() {
        let mut v1 = set("web", 3, None);
        let mut v2 = v1.clone();
        image(&mut v2, "nginx:2");
        let revisions = vec![revision(&v1, "web-a", 1), revision(&v2, "web-b", 2)];
        assert_eq!(
            choose_update(&revisions, &data(&v2)),
            UpdateRevision::Latest(revisions[1].clone())
        );
        // Back to v1: the old revision is renumbered 3.
        assert_eq!(
            choose_update(&revisions, &data(&v1)),
            UpdateRevision::Renumber(revisions[0].clone(), 3)
        );
        image(&mut v1, "nginx:3");
        assert_eq!(
            choose_update(&revisions, &data(&v1)),
            UpdateRevision::Create(3)
        );
        assert_eq!(choose_update(&[], &data(&v1)), UpdateRevision::Create(1));
    }

    #[test]
    fn truncation_spares_live_revisions() {
        let s = set("web", 1, None);
        let revisions: Vec<Arc<ControllerRevision>> = (1..=5)
            .map(|n| {
                let mut r = (*revision(&s, &format!("web-{n}"), n)).clone();
                r.metadata = ObjectMeta {
                    name: Some(format!("web-{n}")),
                    ..r.metadata
                };
                Arc::new(r)
            })
            .collect();
        // Limit 1; web-5 is the update revision, web-1 still runs a pod: of web-2..4 one stays.
        let doomed = to_truncate(&revisions, ["web-5", "web-1"], 1);
        let names: Vec<String> = doomed.iter().map(|r| r.name_any()).collect();
        assert_eq!(names, ["web-2", "web-3"]);
        assert!(to_truncate(&revisions, ["web-5"], 10).is_empty());
        assert!(to_truncate(&revisions, ["web-5"], -1).is_empty());
    }
}
