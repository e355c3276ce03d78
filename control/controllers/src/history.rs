//! ControllerRevisions (upstream `pkg/controller/history` and the DaemonSet controller's
//! `constructHistory`/`cleanupHistory`): the snapshots of a workload's pod template that
//! `kubectl rollout history` lists and `kubectl rollout undo` patches back. Shared by the
//! DaemonSet controller and, later, the StatefulSet controller.
//!
//! - a revision's `data` is the patch that restores its template (upstream `getPatch`,
//!   duplicated in kubectl): `{"spec":{"template":{…,"$patch":"replace"}}}`. kubectl's
//!   `rollout undo` sends it as a strategic merge patch and, before that, compares it byte for
//!   byte with the patch of the live object to print "skipped rollback"; so the template is
//!   shaped as Go's `json.Marshal` writes it (keys sorted, `metadata.creationTimestamp: null`,
//!   every container's `resources: {}`), and the controllers compare revisions by value;
//! - its name is `<owner>-<hash>` (the owner's name cut to 223 characters, as upstream
//!   `ControllerRevisionName`); its labels are the template's plus the hash label; its
//!   controllerRef names the owner, so kubectl finds it by the owner's selector and uid;
//! - `revision` numbers grow: a template that comes back (an undo) gets the next number;
//! - old revisions beyond `revisionHistoryLimit` (default 10) go, oldest first, except those
//!   a live pod still runs.
//!
//! What differs between the kinds stays with them: the DaemonSet hashes its template
//! (`deployment/hash.rs`, label `controller-revision-hash`), upstream's StatefulSet hashes the
//! data (label `controller.kubernetes.io/hash`). A name collision with a different revision is
//! reported as [`Created::Collision`]; the owner then raises its `status.collisionCount`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::ResourceExt;
use serde_json::{json, Value};

/// Revisions kept by default (`spec.revisionHistoryLimit`).
pub const DEFAULT_HISTORY_LIMIT: i32 = 10;
/// Upstream cuts the owner's name so that `<name>-<hash>` stays a valid name.
const MAX_PREFIX: usize = 223;

/// Go's `json.Marshal` shape of a pod template: the fields Go always writes, added where serde
/// leaves them out.
fn go_shaped_template(template: &PodTemplateSpec) -> Value {
    // Serializing a k8s-openapi type cannot fail (no maps with non-string keys).
    let mut value = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    let Some(object) = value.as_object_mut() else {
        return value;
    };
    let metadata = object.entry("metadata").or_insert_with(|| json!({}));
    if let Some(metadata) = metadata.as_object_mut() {
        metadata.entry("creationTimestamp").or_insert(Value::Null);
    }
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            for container in spec
                .get_mut(list)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(c) = container.as_object_mut() {
                    c.entry("resources").or_insert_with(|| json!({}));
                }
            }
        }
    }
    value
}

/// A revision's number (`revision`; absent reads as 0, Go's zero value).
pub fn number(revision: &ControllerRevision) -> i64 {
    revision.revision.unwrap_or(0)
}

/// The revision data restoring `template` (upstream `getPatch`).
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut template = go_shaped_template(template);
    if let Some(object) = template.as_object_mut() {
        object.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// Whether `revision` holds `data` (upstream `Match`, by value rather than by bytes).
pub fn matches(revision: &ControllerRevision, data: &Value) -> bool {
    &revision.data.0 == data
}

/// `<prefix>-<hash>` (upstream `ControllerRevisionName`).
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let mut cut = prefix.len().min(MAX_PREFIX);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{hash}", &prefix[..cut])
}

/// A revision to create: labels = `labels` (the template's) + `hash_label=hash`.
#[allow(clippy::too_many_arguments)]
pub fn new_revision(
    owner: OwnerReference,
    namespace: &str,
    labels: Option<&BTreeMap<String, String>>,
    annotations: Option<&BTreeMap<String, String>>,
    hash_label: &str,
    hash: &str,
    data: Value,
    revision: i64,
) -> ControllerRevision {
    let mut labels = labels.cloned().unwrap_or_default();
    labels.insert(hash_label.to_string(), hash.to_string());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&owner.name, hash)),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: annotations.cloned(),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: RawExtension(data),
        revision: Some(revision),
    }
}

pub fn max_revision<'a>(revisions: impl IntoIterator<Item = &'a ControllerRevision>) -> i64 {
    revisions.into_iter().map(number).max().unwrap_or(0)
}

/// Oldest revision first; ties by creation time, then name (upstream `byRevision`).
pub fn sort_by_revision(revisions: &mut [Arc<ControllerRevision>]) {
    revisions.sort_by(|a, b| {
        number(a)
            .cmp(&number(b))
            .then_with(|| {
                let at =
                    |r: &ControllerRevision| r.metadata.creation_timestamp.as_ref().map(|t| t.0);
                at(a).cmp(&at(b))
            })
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
}

/// The revisions holding `data` (the current template; more than one only after a race) and
/// the others.
pub fn split_current(
    revisions: Vec<Arc<ControllerRevision>>,
    data: &Value,
) -> (Vec<Arc<ControllerRevision>>, Vec<Arc<ControllerRevision>>) {
    revisions.into_iter().partition(|r| matches(r, data))
}

/// Of several revisions holding the current template, the one to keep: the highest revision
/// (the last one of equals, as upstream `dedupCurHistories`).
pub fn keep_of_duplicates(current: &[Arc<ControllerRevision>]) -> Option<Arc<ControllerRevision>> {
    let mut keep: Option<&Arc<ControllerRevision>> = None;
    for r in current {
        if keep.is_none_or(|k| number(r) >= number(k)) {
            keep = Some(r);
        }
    }
    keep.cloned()
}

/// The old revisions to delete so that at most `limit` remain, oldest first, never one that
/// `live` says a pod still runs (upstream `cleanupHistory`).
pub fn to_truncate(
    mut old: Vec<Arc<ControllerRevision>>,
    limit: i32,
    live: impl Fn(&ControllerRevision) -> bool,
) -> Vec<Arc<ControllerRevision>> {
    let mut excess = old.len() as i64 - i64::from(limit.max(0));
    if excess <= 0 {
        return Vec::new();
    }
    sort_by_revision(&mut old);
    let mut doomed = Vec::new();
    for r in old {
        if excess <= 0 {
            break;
        }
        if live(&r) {
            continue;
        }
        doomed.push(r);
        excess -= 1;
    }
    doomed
}

/// What creating a revision came to.
pub enum Created {
    /// Created now, or found already holding the same data (a previous sync made it).
    Revision(Box<ControllerRevision>),
    /// The name is taken by a revision with other data: raise the collision count.
    Collision,
}

/// Creates `revision` (upstream `snapshot`/`CreateControllerRevision`).
pub async fn create(
    api: &Api<ControllerRevision>,
    revision: &ControllerRevision,
) -> Result<Created, kube::Error> {
    match api.create(&PostParams::default(), revision).await {
        Ok(created) => Ok(Created::Revision(Box::new(created))),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing = api.get(&revision.name_any()).await?;
            let same = matches(&existing, &revision.data.0);
            Ok(if same {
                Created::Revision(Box::new(existing))
            } else {
                Created::Collision
            })
        }
        Err(e) => Err(e),
    }
}

/// Gives `revision` a new number (a template that came back); guarded by its resourceVersion.
pub async fn set_revision(
    api: &Api<ControllerRevision>,
    revision: &ControllerRevision,
    number: i64,
) -> Result<ControllerRevision, kube::Error> {
    let patch = json!({
        "metadata": {"resourceVersion": revision.metadata.resource_version},
        "revision": number,
    });
    api.patch(
        &revision.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
}

/// Adds a label to `revision` (upstream adds a missing hash label to revisions of old
/// controllers).
pub async fn add_label(
    api: &Api<ControllerRevision>,
    revision: &ControllerRevision,
    key: &str,
    value: &str,
) -> Result<ControllerRevision, kube::Error> {
    let patch = json!({
        "metadata": {
            "resourceVersion": revision.metadata.resource_version,
            "labels": {key: value},
        }
    });
    api.patch(
        &revision.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
}

/// Deletes `revision`; one already gone is fine.
pub async fn delete(
    api: &Api<ControllerRevision>,
    revision: &ControllerRevision,
) -> Result<(), kube::Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: revision.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&revision.name_any(), &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "agent".to_string())].into()),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some(image.into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
        }
    }

    fn revision(name: &str, number: i64, hash: &str) -> Arc<ControllerRevision> {
        Arc::new(ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("controller-revision-hash".to_string(), hash.to_string())].into()),
                ..ObjectMeta::default()
            },
            data: RawExtension(Value::Null),
            revision: Some(number),
        })
    }

    #[test]
    fn data_is_the_replace_patch_in_go_shape() {
        let data = template_patch(&template("nginx:1"));
        // serde_json's map keeps keys sorted, as Go's json.Marshal of a map.
        assert_eq!(
            serde_json::to_string(&data).expect("json"),
            r#"{"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null,"labels":{"app":"agent"}},"spec":{"containers":[{"image":"nginx:1","name":"c","resources":{}}]}}}}"#
        );
        let r = new_revision(
            OwnerReference {
                name: "agent".into(),
                ..OwnerReference::default()
            },
            "default",
            template("nginx:1").metadata.and_then(|m| m.labels).as_ref(),
            None,
            "controller-revision-hash",
            "5d4b",
            data.clone(),
            1,
        );
        assert_eq!(r.metadata.name.as_deref(), Some("agent-5d4b"));
        assert_eq!(
            r.metadata.labels.as_ref().map(|l| l.len()),
            Some(2),
            "template labels + hash"
        );
        assert!(matches(&r, &data));
        assert!(!matches(&r, &template_patch(&template("nginx:2"))));
    }

    #[test]
    fn names_are_cut_as_upstream() {
        let long = "d".repeat(300);
        assert_eq!(revision_name(&long, "abc").len(), 223 + 4);
        assert_eq!(revision_name("ds", "abc"), "ds-abc");
    }

    #[test]
    fn truncation_keeps_the_limit_and_live_revisions() {
        let old = vec![
            revision("r3", 3, "h3"),
            revision("r1", 1, "h1"),
            revision("r2", 2, "h2"),
            revision("r4", 4, "h4"),
        ];
        // Limit 2 of 4: two go, oldest first, but r1 still has a pod.
        let doomed = to_truncate(old.clone(), 2, |r| r.name_any() == "r1");
        let names: Vec<String> = doomed.iter().map(|r| r.name_any()).collect();
        assert_eq!(names, ["r2", "r3"]);
        assert!(to_truncate(old.clone(), 10, |_| false).is_empty());
        assert_eq!(to_truncate(old, 0, |_| false).len(), 4);
    }

    #[test]
    fn duplicates_keep_the_highest_revision() {
        let keep = keep_of_duplicates(&[revision("a", 2, "x"), revision("b", 5, "y")]);
        assert_eq!(keep.map(|r| r.name_any()).as_deref(), Some("b"));
        assert_eq!(
            max_revision([&*revision("a", 2, "x"), &*revision("b", 7, "y")]),
            7
        );
    }
}
