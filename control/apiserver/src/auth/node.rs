//! The Node authorizer (upstream `plugin/pkg/auth/authorizer/node`): a kubelet
//! (`system:node:<name>` in group `system:nodes`) may read only the secrets, config maps,
//! volumes, claims and service-account tokens of the pods bound to its node, its own Node and
//! Lease, and otherwise what upstream's `system:node` rules allow. Writes to its own objects are
//! narrowed further by NodeRestriction admission (`auth::admission`).
//!
//! Upstream keeps a graph of pods, nodes and what they reference, fed by informers. Here the
//! relationship is looked up when asked, from the pod watch cache of the object's namespace:
//! kubelets ask for a secret or config map when a pod starts, not per request, so a scan of one
//! namespace's pods is cheap enough and needs no second copy of the pods.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::rbac::rules::Rule;
use super::{Attributes, UserInfo};
use crate::cache::{Cacher, Caches};
use crate::error::ApiResult;

/// `Some(node name)` for a node's identity; `Some("")` for a member of system:nodes whose user
/// name is not `system:node:<name>`.
pub fn node_identity(user: &UserInfo) -> Option<&str> {
    if !user.in_group("system:nodes") {
        return None;
    }
    Some(user.name.strip_prefix("system:node:").unwrap_or_default())
}

/// Upstream's static node rules: the `system:node` ClusterRole of the default policy.
fn node_rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        super::rbac::policy::upstream()["clusterroles"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["metadata"]["name"] == "system:node")
            .map(Rule::all_of)
            .unwrap_or_default()
    })
}

/// What the Node authorizer decided: allow, or no opinion with a reason for the 403.
pub enum NodeDecision {
    Allow,
    NoOpinion(String),
}

use NodeDecision::{Allow, NoOpinion};

fn no(reason: impl Into<String>) -> NodeDecision {
    NoOpinion(reason.into())
}

pub struct NodeAuthorizer {
    pods: Arc<Cacher>,
    claims: Arc<Cacher>,
    attachments: Arc<Cacher>,
}

/// Kinds of objects a pod can lead a node to.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Pod,
    Secret,
    ConfigMap,
    ServiceAccount,
    Claim,
    ResourceClaim,
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn list(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// Whether `pod` references the object `kind`/`name` (in its own namespace).
fn references(pod: &Value, kind: Kind, name: &str) -> bool {
    let spec = &pod["spec"];
    let containers = || {
        list(&spec["containers"])
            .chain(list(&spec["initContainers"]))
            .chain(list(&spec["ephemeralContainers"]))
    };
    let from_env = |key_ref: &str, source_ref: &str| {
        containers().any(|c| {
            list(&c["env"]).any(|e| str_at(e, &format!("/valueFrom/{key_ref}/name")) == Some(name))
                || list(&c["envFrom"])
                    .any(|e| str_at(e, &format!("/{source_ref}/name")) == Some(name))
        })
    };
    let volumes = || list(&spec["volumes"]);
    match kind {
        Kind::Pod => true,
        Kind::ServiceAccount => str_at(spec, "/serviceAccountName").unwrap_or("default") == name,
        Kind::Secret => {
            list(&spec["imagePullSecrets"]).any(|s| s["name"] == name)
                || from_env("secretKeyRef", "secretRef")
                || volumes().any(|v| {
                    str_at(v, "/secret/secretName") == Some(name)
                        || list(&v["projected"]["sources"])
                            .any(|s| str_at(s, "/secret/name") == Some(name))
                        || v.as_object().is_some_and(|o| {
                            o.values().any(|source| {
                                str_at(source, "/secretRef/name") == Some(name)
                                    || str_at(source, "/nodePublishSecretRef/name") == Some(name)
                            })
                        })
                })
        }
        Kind::ConfigMap => {
            from_env("configMapKeyRef", "configMapRef")
                || volumes().any(|v| {
                    str_at(v, "/configMap/name") == Some(name)
                        || list(&v["projected"]["sources"])
                            .any(|s| str_at(s, "/configMap/name") == Some(name))
                })
        }
        Kind::Claim => {
            let pod_name = str_at(pod, "/metadata/name").unwrap_or_default();
            volumes().any(|v| {
                str_at(v, "/persistentVolumeClaim/claimName") == Some(name)
                    || (v.get("ephemeral").is_some()
                        && v["name"]
                            .as_str()
                            .is_some_and(|vol| format!("{pod_name}-{vol}") == name))
            })
        }
        Kind::ResourceClaim => {
            list(&pod["status"]["resourceClaimStatuses"]).any(|s| s["resourceClaimName"] == name)
        }
    }
}

impl NodeAuthorizer {
    pub async fn new(caches: &Caches) -> ApiResult<NodeAuthorizer> {
        let find = |g: &str, r: &str| {
            crate::resources::find(g, "v1", r).expect("the Node authorizer's resources are served")
        };
        Ok(NodeAuthorizer {
            pods: caches.get(find("", "pods")).await?,
            claims: caches.get(find("", "persistentvolumeclaims")).await?,
            attachments: caches
                .get(find("storage.k8s.io", "volumeattachments"))
                .await?,
        })
    }

    /// The caches the decision reads.
    pub fn cachers(&self) -> [&Arc<Cacher>; 3] {
        [&self.pods, &self.claims, &self.attachments]
    }

    fn pods_on_node(&self, node: &str, namespace: &str) -> Vec<Arc<Value>> {
        let prefix = format!("/registry/pods/{namespace}/");
        self.pods
            .snapshot(&prefix)
            .0
            .into_iter()
            .filter(|p| str_at(p, "/spec/nodeName") == Some(node))
            .collect()
    }

    fn related(&self, node: &str, kind: Kind, namespace: &str, name: &str) -> bool {
        self.pods_on_node(node, namespace)
            .iter()
            .any(|pod| match kind {
                Kind::Pod => str_at(pod, "/metadata/name") == Some(name),
                _ => references(pod, kind, name),
            })
    }

    /// A PersistentVolume is related when a related claim is bound to it.
    fn pv_related(&self, node: &str, name: &str) -> bool {
        self.claims.snapshot("").0.iter().any(|claim| {
            str_at(claim, "/spec/volumeName") == Some(name) && {
                let ns = str_at(claim, "/metadata/namespace").unwrap_or_default();
                let claim_name = str_at(claim, "/metadata/name").unwrap_or_default();
                self.related(node, Kind::Claim, ns, claim_name)
            }
        })
    }

    fn check(&self, node: &str, kind: Kind, attrs: &Attributes) -> NodeDecision {
        let r = attrs.resource.as_ref().expect("resource request");
        if r.name.is_empty() {
            return no("No Object name found");
        }
        if self.related(node, kind, &r.namespace, &r.name) {
            Allow
        } else {
            no(format!(
                "no relationship found between node '{node}' and this object"
            ))
        }
    }

    fn get_only(&self, node: &str, kind: Kind, attrs: &Attributes) -> NodeDecision {
        let r = attrs.resource.as_ref().expect("resource request");
        if attrs.verb != "get" {
            return no("can only get individual resources of this type");
        }
        if !r.subresource.is_empty() {
            return no("cannot get subresource");
        }
        self.check(node, kind, attrs)
    }

    fn read_namespaced(&self, node: &str, kind: Kind, attrs: &Attributes) -> NodeDecision {
        let r = attrs.resource.as_ref().expect("resource request");
        if !matches!(attrs.verb.as_str(), "get" | "list" | "watch") {
            return no("can only read resources of this type");
        }
        if !r.subresource.is_empty() {
            return no("cannot read subresource");
        }
        if r.namespace.is_empty() {
            return no("can only read namespaced object of this type");
        }
        self.check(node, kind, attrs)
    }

    /// Upstream's decision for a node's request; non-node users get no opinion.
    pub fn authorize(&self, attrs: &Attributes) -> NodeDecision {
        let Some(node) = node_identity(attrs.user) else {
            return no("");
        };
        if node.is_empty() {
            return no(format!("unknown node for user {:?}", attrs.user.name));
        }
        if let Some(r) = &attrs.resource {
            let verb = attrs.verb.as_str();
            let sub = r.subresource.as_str();
            match (r.api_group.as_str(), r.resource.as_str()) {
                ("", "secrets") => return self.read_namespaced(node, Kind::Secret, attrs),
                ("", "configmaps") => return self.read_namespaced(node, Kind::ConfigMap, attrs),
                ("", "persistentvolumeclaims") => {
                    if sub == "status" {
                        if !matches!(verb, "update" | "patch") {
                            return no("can only get/update/patch this type");
                        }
                        return self.check(node, Kind::Claim, attrs);
                    }
                    return self.get_only(node, Kind::Claim, attrs);
                }
                ("", "persistentvolumes") => {
                    if verb != "get" {
                        return no("can only get individual resources of this type");
                    }
                    return if self.pv_related(node, &r.name) {
                        Allow
                    } else {
                        no(format!(
                            "no relationship found between node '{node}' and this object"
                        ))
                    };
                }
                ("resource.k8s.io", "resourceclaims") => {
                    return self.get_only(node, Kind::ResourceClaim, attrs)
                }
                ("storage.k8s.io", "volumeattachments") => {
                    if verb != "get" {
                        return no("can only get individual resources of this type");
                    }
                    let key = format!("/registry/storage.k8s.io/volumeattachments/{}", r.name);
                    return match self.attachments.lookup(&key) {
                        Some(va) if str_at(&va, "/spec/nodeName") == Some(node) => Allow,
                        _ => no(format!(
                            "no relationship found between node '{node}' and this object"
                        )),
                    };
                }
                ("", "serviceaccounts") => {
                    if verb == "get" && sub.is_empty() {
                        return self.read_namespaced(node, Kind::ServiceAccount, attrs);
                    }
                    if verb != "create" || r.name.is_empty() {
                        return no("can only create tokens for individual service accounts");
                    }
                    if sub != "token" {
                        return no("can only create token subresource of serviceaccount");
                    }
                    return self.check(node, Kind::ServiceAccount, attrs);
                }
                ("coordination.k8s.io", "leases") => {
                    if !matches!(verb, "get" | "create" | "update" | "patch" | "delete") {
                        return no("can only get, create, update, patch, or delete a node lease");
                    }
                    if r.namespace != "kube-node-lease" {
                        return no(
                            "can only access leases in the \"kube-node-lease\" system namespace",
                        );
                    }
                    if verb != "create" && r.name != node {
                        return no(
                            "can only access node lease with the same name as the requesting node",
                        );
                    }
                    return Allow;
                }
                ("storage.k8s.io", "csinodes") => {
                    if !sub.is_empty() {
                        return no("can only get, create, update, patch, or delete a CSINode");
                    }
                    if !matches!(verb, "get" | "create" | "update" | "patch" | "delete") {
                        return no("can only get, create, update, patch, or delete a CSINode");
                    }
                    if verb != "create" && r.name != node {
                        return no(
                            "can only access CSINode with the same name as the requesting node",
                        );
                    }
                    return Allow;
                }
                ("", "nodes") => {
                    return match (sub, verb) {
                        ("", "create" | "update" | "patch") => Allow,
                        ("", "get" | "list" | "watch") => {
                            if r.name == node {
                                Allow
                            } else if r.name.is_empty() {
                                no(format!(
                                    "node '{node}' cannot read all nodes, only its own Node object"
                                ))
                            } else {
                                no(format!(
                                    "node '{node}' cannot read '{}', only its own Node object",
                                    r.name
                                ))
                            }
                        }
                        ("status", "update" | "patch") => Allow,
                        _ => no(""),
                    };
                }
                ("", "pods") => {
                    return match (sub, verb) {
                        ("", "get") => self.get_only(node, Kind::Pod, attrs),
                        ("", "list" | "watch") => {
                            if selects_node(&r.field_selector, node) {
                                Allow
                            } else if !r.name.is_empty() {
                                self.check(node, Kind::Pod, attrs)
                            } else {
                                no("can only list/watch pods with spec.nodeName field selector")
                            }
                        }
                        ("", "create" | "delete") => Allow,
                        ("status", "update" | "patch") => Allow,
                        ("eviction", "create") => Allow,
                        _ => no(""),
                    };
                }
                _ => {}
            }
        }
        if node_rules().iter().any(|rule| rule.allows(attrs)) {
            Allow
        } else {
            no("")
        }
    }
}

/// Whether a field selector has `spec.nodeName=<node>` (`=` or `==`).
fn selects_node(selector: &str, node: &str) -> bool {
    selector.split(',').any(|req| {
        let req = req.trim();
        let value = req
            .strip_prefix("spec.nodeName==")
            .or_else(|| req.strip_prefix("spec.nodeName="));
        value == Some(node)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_reference_what_they_mount_and_read() {
        let pod = json!({"metadata": {"name": "p"}, "spec": {
            "serviceAccountName": "sa",
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "s", "secret": {"secretName": "vol-secret"}},
                {"name": "c", "configMap": {"name": "vol-cm"}},
                {"name": "pr", "projected": {"sources": [{"secret": {"name": "proj-secret"}}, {"configMap": {"name": "kube-root-ca.crt"}}]}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}},
            ],
            "containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}}],
                            "envFrom": [{"configMapRef": {"name": "env-cm"}}]}],
        }});
        for s in ["pull", "vol-secret", "proj-secret", "env-secret"] {
            assert!(references(&pod, Kind::Secret, s), "{s}");
        }
        assert!(!references(&pod, Kind::Secret, "other"));
        for c in ["vol-cm", "kube-root-ca.crt", "env-cm"] {
            assert!(references(&pod, Kind::ConfigMap, c), "{c}");
        }
        assert!(references(&pod, Kind::ServiceAccount, "sa"));
        assert!(!references(&pod, Kind::ServiceAccount, "default"));
        assert!(references(&pod, Kind::Claim, "data"));
        assert!(references(&pod, Kind::Claim, "p-scratch"));
    }

    #[test]
    fn node_identity_needs_the_group() {
        let node = UserInfo {
            name: "system:node:n1".into(),
            groups: vec!["system:nodes".into()],
            ..Default::default()
        };
        assert_eq!(node_identity(&node), Some("n1"));
        let impostor = UserInfo {
            name: "system:node:n1".into(),
            ..Default::default()
        };
        assert_eq!(node_identity(&impostor), None);
        assert!(selects_node("spec.nodeName=n1", "n1"));
        assert!(selects_node("status.phase!=Failed,spec.nodeName==n1", "n1"));
        assert!(!selects_node("spec.nodeName=n2", "n1"));
        assert!(!node_rules().is_empty());
    }
}
