//! Admission checks that depend on who writes: NodeRestriction (upstream
//! `plugin/pkg/admission/noderestriction`: a kubelet may write only its own Node, Lease and
//! CSINode, the status of pods bound to it, and mirror pods) and RBAC's escalation prevention
//! (`rbac::escalation`). Called by the write handlers once the object is decoded and defaulted,
//! before validation; a refusal writes nothing.

use serde_json::Value;

use super::node::node_identity;
use super::rbac::escalation;
use super::{Authorizer, UserInfo};
use crate::error::{ApiError, ApiResult};
use crate::resources::{ResourceInfo, Sub};

/// What the write does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Operation {
    Create,
    Update,
    Delete,
}

fn forbidden(info: &ResourceInfo, name: &str, why: &str) -> ApiError {
    ApiError::forbidden(format!("{} {name:?} is forbidden: {why}", info.qualified()))
}

fn node_name_of(pod: Option<&Value>) -> &str {
    pod.and_then(|p| p.pointer("/spec/nodeName"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Checks one write by `user`. `new` is the object to be stored (create, update), `old` the
/// stored one (update, delete).
#[allow(clippy::too_many_arguments)]
pub fn check(
    authorizer: &Authorizer,
    user: &UserInfo,
    info: &ResourceInfo,
    sub: Option<Sub>,
    operation: Operation,
    name: &str,
    new: Option<&Value>,
    old: Option<&Value>,
) -> ApiResult<()> {
    if info.group == "rbac.authorization.k8s.io" && sub.is_none() && operation != Operation::Delete
    {
        if let Some(object) = new {
            match info.resource {
                "roles" | "clusterroles" => escalation::check_role(authorizer, user, info, object)?,
                "rolebindings" | "clusterrolebindings" => {
                    escalation::check_binding(authorizer, user, info, object)?
                }
                _ => {}
            }
        }
    }
    if let Some(node) = node_identity(user) {
        node_restriction(node, info, sub, operation, name, new, old)?;
    }
    Ok(())
}

/// A mirror pod's single owner reference: the creating Node, as controller, without
/// blockOwnerDeletion (upstream's `admitPodCreate`; the Node's uid is checked by
/// [`verify_mirror_owner_uid`], which reads the Node).
fn check_mirror_owner(node: &str, pod: &Value) -> Result<(), String> {
    let owners = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let owner = match owners {
        [] => {
            return Err(format!(
                "node {node:?} can only create pods with an owner reference set to itself"
            ))
        }
        [owner] => owner,
        _ => {
            return Err(format!(
                "node {node:?} can only create pods with a single owner reference set to itself"
            ))
        }
    };
    let field = |k: &str| owner.get(k).and_then(Value::as_str).unwrap_or_default();
    if field("apiVersion") != "v1" || field("kind") != "Node" || field("name") != node {
        return Err(format!(
            "node {node:?} can only create pods with an owner reference set to itself"
        ));
    }
    if owner.get("controller").and_then(Value::as_bool) != Some(true) {
        return Err(format!(
            "node {node:?} can only create pods with a controller owner reference set to itself"
        ));
    }
    if owner.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true) {
        return Err(format!(
            "node {node:?} must not set blockOwnerDeletion on an owner reference"
        ));
    }
    Ok(())
}

/// NodeRestriction's last step for a mirror pod a node creates: its owner reference names the
/// Node's current uid (upstream: the Node's NotFound, or "UID mismatch").
pub async fn verify_mirror_owner_uid(
    lookup: &dyn crate::registry::Lookup,
    user: &UserInfo,
    info: &ResourceInfo,
    name: &str,
    pod: &Value,
) -> ApiResult<()> {
    let Some(node) = node_identity(user) else {
        return Ok(());
    };
    if (info.group, info.resource) != ("", "pods") || node.is_empty() {
        return Ok(());
    }
    let owner_uid = pod
        .pointer("/metadata/ownerReferences/0/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(stored) = lookup.get("", "nodes", None, node).await? else {
        return Err(ApiError::not_found(
            crate::error::Kind {
                group: "",
                resource: "nodes",
                kind: "Node",
            },
            node,
        ));
    };
    let node_uid = stored
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if owner_uid != node_uid {
        return Err(forbidden(
            info,
            name,
            &format!("node {node} UID mismatch: expected {owner_uid} got {node_uid}"),
        ));
    }
    Ok(())
}

use skiff_podutil::api_object_reference;

fn node_restriction(
    node: &str,
    info: &ResourceInfo,
    sub: Option<Sub>,
    operation: Operation,
    name: &str,
    new: Option<&Value>,
    old: Option<&Value>,
) -> ApiResult<()> {
    if node.is_empty() {
        return Err(forbidden(info, name, "could not determine node from user"));
    }
    match (info.group, info.resource, sub) {
        ("", "pods", None) => match operation {
            Operation::Create => {
                let pod = new.expect("create has an object");
                let mirror = pod
                    .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
                    .is_some();
                if !mirror {
                    return Err(forbidden(info, name, &format!(
                        "pod does not have \"kubernetes.io/config.mirror\" annotation, node {node:?} can only create mirror pods"
                    )));
                }
                if node_name_of(new) != node {
                    return Err(forbidden(
                        info,
                        name,
                        &format!(
                            "node {node:?} can only create pods with spec.nodeName set to itself"
                        ),
                    ));
                }
                if let Err(why) = check_mirror_owner(node, pod) {
                    return Err(forbidden(info, name, &why));
                }
                if let Some(what) = api_object_reference(pod) {
                    return Err(forbidden(
                        info,
                        name,
                        &format!("node {node:?} can not create pods that reference {what}"),
                    ));
                }
                Ok(())
            }
            Operation::Delete => {
                if node_name_of(old) != node {
                    return Err(forbidden(
                        info,
                        name,
                        &format!(
                            "node {node:?} can only delete pods with spec.nodeName set to itself"
                        ),
                    ));
                }
                Ok(())
            }
            Operation::Update => Err(forbidden(
                info,
                name,
                &format!("node {node:?} can only update pod status"),
            )),
        },
        ("", "pods", Some(Sub::Status)) => {
            if node_name_of(old) != node {
                return Err(forbidden(info, name, &format!(
                    "node {node:?} can only update pod status for pods with spec.nodeName set to itself"
                )));
            }
            Ok(())
        }
        ("", "pods", Some(Sub::Eviction)) => {
            if node_name_of(old) != node {
                return Err(forbidden(
                    info,
                    name,
                    &format!("node {node:?} can only evict pods with spec.nodeName set to itself"),
                ));
            }
            Ok(())
        }
        ("", "nodes", None | Some(Sub::Status)) => {
            if name != node {
                return Err(forbidden(
                    info,
                    name,
                    &format!("node {node:?} is not allowed to modify node {name:?}"),
                ));
            }
            if operation == Operation::Delete {
                return Err(forbidden(
                    info,
                    name,
                    &format!("node {node:?} is not allowed to delete nodes"),
                ));
            }
            // Labels under node-restriction.kubernetes.io/ are for administrators only.
            let restricted = |o: Option<&Value>| -> Vec<(String, Value)> {
                o.and_then(|o| o.pointer("/metadata/labels"))
                    .and_then(Value::as_object)
                    .map(|labels| {
                        labels
                            .iter()
                            .filter(|(k, _)| k.contains("node-restriction.kubernetes.io/"))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            if restricted(new) != restricted(old) && sub.is_none() {
                return Err(forbidden(
                    info,
                    name,
                    &format!(
                        "is not allowed to modify labels: {}",
                        restricted(new)
                            .into_iter()
                            .map(|(k, _)| k)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            Ok(())
        }
        ("coordination.k8s.io", "leases", None) => {
            if name != node {
                return Err(forbidden(
                    info,
                    name,
                    "can only access node lease with the same name as the requesting node",
                ));
            }
            Ok(())
        }
        ("storage.k8s.io", "csinodes", None) => {
            if name != node {
                return Err(forbidden(
                    info,
                    name,
                    "can only access CSINode with the same name as the requesting node",
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mirror(owners: Value, spec: Value) -> Value {
        json!({
            "metadata": {
                "name": "web-n1",
                "annotations": {"kubernetes.io/config.mirror": "abc"},
                "ownerReferences": owners,
            },
            "spec": spec,
        })
    }

    fn node_owner() -> Value {
        json!([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u1", "controller": true}])
    }

    fn pods() -> &'static ResourceInfo {
        crate::resources::find("", "v1", "pods").unwrap()
    }

    fn create(pod: &Value) -> Result<(), String> {
        node_restriction(
            "n1",
            pods(),
            None,
            Operation::Create,
            "web-n1",
            Some(pod),
            None,
        )
        .map_err(|e| e.message)
    }

    #[test]
    fn mirror_pods_as_upstreams_node_restriction_admits_them() {
        let spec = json!({"nodeName": "n1", "containers": [{"name": "c", "image": "i"}],
            "volumes": [{"name": "h", "hostPath": {"path": "/x"}}, {"name": "e", "emptyDir": {}}]});
        create(&mirror(node_owner(), spec.clone())).unwrap();
        let cases = [
            (
                json!({"metadata": {"name": "p"}, "spec": spec.clone()}),
                "can only create mirror pods",
            ),
            (
                mirror(node_owner(), json!({"nodeName": "n2", "containers": []})),
                "spec.nodeName set to itself",
            ),
            (
                mirror(json!([]), spec.clone()),
                "with an owner reference set to itself",
            ),
            (
                mirror(json!([node_owner()[0], node_owner()[0]]), spec.clone()),
                "a single owner reference",
            ),
            (
                mirror(
                    json!([{"apiVersion": "v1", "kind": "Node", "name": "n2", "uid": "u", "controller": true}]),
                    spec.clone(),
                ),
                "with an owner reference set to itself",
            ),
            (
                mirror(
                    json!([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u"}]),
                    spec.clone(),
                ),
                "a controller owner reference",
            ),
            (
                mirror(
                    json!([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u", "controller": true, "blockOwnerDeletion": true}]),
                    spec.clone(),
                ),
                "must not set blockOwnerDeletion",
            ),
            (
                mirror(
                    node_owner(),
                    json!({"nodeName": "n1", "serviceAccountName": "default", "containers": []}),
                ),
                "can not create pods that reference serviceaccounts",
            ),
            (
                mirror(
                    node_owner(),
                    json!({"nodeName": "n1", "containers": [{"name": "c", "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "k"}}}]}]}),
                ),
                "can not create pods that reference configmaps",
            ),
            (
                mirror(
                    node_owner(),
                    json!({"nodeName": "n1", "volumes": [{"name": "s", "secret": {"secretName": "s"}}], "containers": []}),
                ),
                "can not create pods that reference secrets",
            ),
            (
                mirror(
                    node_owner(),
                    json!({"nodeName": "n1", "volumes": [{"name": "c", "persistentVolumeClaim": {"claimName": "c"}}], "containers": []}),
                ),
                "can not create pods that reference persistentvolumeclaims",
            ),
            (
                mirror(
                    node_owner(),
                    json!({"nodeName": "n1", "volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}], "containers": []}),
                ),
                "can not create pods that reference serviceaccounts (via projected volumes)",
            ),
        ];
        for (pod, why) in cases {
            let err = create(&pod).unwrap_err();
            assert!(err.contains(why), "{pod}: {err}");
        }
    }
}
