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
