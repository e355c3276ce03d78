//! The RBAC authorizer (upstream `plugin/pkg/auth/authorizer/rbac`): Roles, ClusterRoles and
//! their bindings, read from the watch caches, decide what each user, group and service account
//! may do.
//!
//! Requests are answered from an index (subject → bound roles → rules) rebuilt only when one of
//! the four RBAC caches changed (`Cacher::changes`), so the cost per request is a few hash
//! lookups and the rules of the caller's own bindings, whatever the number of roles. `policy`
//! bootstraps upstream's default roles and bindings; `escalation` keeps users from granting
//! what they do not have.

pub mod escalation;
pub mod policy;
pub mod rules;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde_json::Value;

use crate::auth::{Attributes, UserInfo};
use crate::cache::{Cacher, Caches};
use crate::error::ApiResult;
use rules::Rule;

const GROUP: &str = "rbac.authorization.k8s.io";

/// A binding of a role to a subject, as the index keeps it.
#[derive(Clone, Debug)]
struct Grant {
    /// `ClusterRoleBinding "x"` or `RoleBinding "x/ns"` (upstream's reason wording).
    binding: String,
    /// "Role" or "ClusterRole".
    role_kind: String,
    role_name: String,
    /// `User "alice"`, `Group "g"`, `ServiceAccount "ns/name"`.
    subject: String,
}

#[derive(Default)]
struct Index {
    versions: [u64; 4],
    cluster_roles: HashMap<String, Arc<Vec<Rule>>>,
    /// (namespace, name)
    roles: HashMap<(String, String), Arc<Vec<Rule>>>,
    /// subject key ("u:alice", "g:system:masters") → cluster-wide grants
    cluster_grants: HashMap<String, Vec<Grant>>,
    /// namespace → subject key → grants in that namespace
    namespace_grants: HashMap<String, HashMap<String, Vec<Grant>>>,
}

fn subject_keys(user: &UserInfo) -> Vec<String> {
    let mut keys = Vec::with_capacity(user.groups.len() + 1);
    keys.push(format!("u:{}", user.name));
    for g in &user.groups {
        keys.push(format!("g:{g}"));
    }
    keys
}

/// The index key and upstream's description of a binding subject.
fn subject(subject: &Value, binding_namespace: &str) -> Option<(String, String)> {
    let name = subject["name"].as_str()?;
    match subject["kind"].as_str()? {
        "User" => Some((format!("u:{name}"), format!("User {name:?}"))),
        "Group" => Some((format!("g:{name}"), format!("Group {name:?}"))),
        "ServiceAccount" => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_namespace);
            Some((
                format!("u:system:serviceaccount:{ns}:{name}"),
                format!("ServiceAccount {:?}", format!("{ns}/{name}")),
            ))
        }
        _ => None,
    }
}

impl Index {
    fn build(objects: [Vec<Arc<Value>>; 4], versions: [u64; 4]) -> Index {
        let [cluster_roles, cluster_bindings, roles, bindings] = objects;
        let mut index = Index {
            versions,
            ..Index::default()
        };
        for role in &cluster_roles {
            if let Some(name) = role["metadata"]["name"].as_str() {
                index
                    .cluster_roles
                    .insert(name.to_string(), Arc::new(Rule::all_of(role)));
            }
        }
        for role in &roles {
            let m = &role["metadata"];
            if let (Some(ns), Some(name)) = (m["namespace"].as_str(), m["name"].as_str()) {
                index.roles.insert(
                    (ns.to_string(), name.to_string()),
                    Arc::new(Rule::all_of(role)),
                );
            }
        }
        for binding in &cluster_bindings {
            let name = binding["metadata"]["name"].as_str().unwrap_or_default();
            let role_ref = &binding["roleRef"];
            if role_ref["kind"].as_str() != Some("ClusterRole") {
                continue;
            }
            for s in binding["subjects"].as_array().into_iter().flatten() {
                if let Some((key, described)) = subject(s, "") {
                    index.cluster_grants.entry(key).or_default().push(Grant {
                        binding: format!("ClusterRoleBinding {name:?}"),
                        role_kind: "ClusterRole".into(),
                        role_name: role_ref["name"].as_str().unwrap_or_default().into(),
                        subject: described,
                    });
                }
            }
        }
        for binding in &bindings {
            let m = &binding["metadata"];
            let (ns, name) = (
                m["namespace"].as_str().unwrap_or_default(),
                m["name"].as_str().unwrap_or_default(),
            );
            let role_ref = &binding["roleRef"];
            let Some(kind @ ("Role" | "ClusterRole")) = role_ref["kind"].as_str() else {
                continue;
            };
            for s in binding["subjects"].as_array().into_iter().flatten() {
                if let Some((key, described)) = subject(s, ns) {
                    index
                        .namespace_grants
                        .entry(ns.to_string())
                        .or_default()
                        .entry(key)
                        .or_default()
                        .push(Grant {
                            binding: format!("RoleBinding {:?}", format!("{name}/{ns}")),
                            role_kind: kind.into(),
                            role_name: role_ref["name"].as_str().unwrap_or_default().into(),
                            subject: described,
                        });
                }
            }
        }
        index
    }

    fn rules_of(&self, grant: &Grant, namespace: &str) -> Option<Arc<Vec<Rule>>> {
        match grant.role_kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&grant.role_name).cloned(),
            _ => self
                .roles
                .get(&(namespace.to_string(), grant.role_name.clone()))
                .cloned(),
        }
    }

    /// Every grant that applies to `user` in `namespace` ("" = cluster-wide only), with the
    /// namespace its rules resolve in.
    fn grants<'a>(&'a self, user: &UserInfo, namespace: &'a str) -> Vec<(&'a Grant, &'a str)> {
        let keys = subject_keys(user);
        let mut out = Vec::new();
        for key in &keys {
            for g in self.cluster_grants.get(key).into_iter().flatten() {
                out.push((g, ""));
            }
        }
        if !namespace.is_empty() {
            if let Some(by_subject) = self.namespace_grants.get(namespace) {
                for key in &keys {
                    for g in by_subject.get(key).into_iter().flatten() {
                        out.push((g, namespace));
                    }
                }
            }
        }
        out
    }
}

/// The RBAC authorizer over the four RBAC watch caches.
pub struct Rbac {
    cachers: [Arc<Cacher>; 4],
    index: RwLock<Arc<Index>>,
    rebuilding: Mutex<()>,
}

impl Rbac {
    pub async fn new(caches: &Caches) -> ApiResult<Rbac> {
        let find = |r: &str| {
            crate::resources::find(GROUP, "v1", r).expect("the RBAC resources are served")
        };
        let cachers = [
            caches.get(find("clusterroles")).await?,
            caches.get(find("clusterrolebindings")).await?,
            caches.get(find("roles")).await?,
            caches.get(find("rolebindings")).await?,
        ];
        Ok(Rbac {
            cachers,
            index: RwLock::new(Arc::new(Index {
                versions: [u64::MAX; 4],
                ..Index::default()
            })),
            rebuilding: Mutex::new(()),
        })
    }

    /// The caches this authorizer reads (to wait for them to catch up before denying).
    pub fn cachers(&self) -> &[Arc<Cacher>] {
        &self.cachers
    }

    fn index(&self) -> Arc<Index> {
        let versions = self.cachers.each_ref().map(|c| c.changes());
        let current = self.index.read().clone();
        if current.versions == versions {
            return current;
        }
        let _one = self.rebuilding.lock();
        let current = self.index.read().clone();
        let versions = self.cachers.each_ref().map(|c| c.changes());
        if current.versions == versions {
            return current;
        }
        let objects = self.cachers.each_ref().map(|c| c.snapshot("").0);
        let fresh = Arc::new(Index::build(objects, versions));
        *self.index.write() = fresh.clone();
        fresh
    }

    /// `Some(reason)` when a binding allows the request (upstream's reason: `RBAC: allowed by
    /// ClusterRoleBinding "x" of ClusterRole "y" to User "alice"`), `None` for no opinion.
    pub fn authorize(&self, attrs: &Attributes) -> Option<String> {
        let index = self.index();
        let namespace = attrs
            .resource
            .as_ref()
            .map(|r| r.namespace.as_str())
            .unwrap_or_default();
        for (grant, rules_ns) in index.grants(attrs.user, namespace) {
            let Some(rules) = index.rules_of(grant, rules_ns) else {
                continue;
            };
            if rules.iter().any(|r| r.allows(attrs)) {
                return Some(format!(
                    "RBAC: allowed by {} of {} {:?} to {}",
                    grant.binding, grant.role_kind, grant.role_name, grant.subject
                ));
            }
        }
        None
    }

    /// Every rule that applies to `user` in `namespace` ("" = cluster-wide only): what
    /// SelfSubjectRulesReview lists and what the escalation check compares against.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<Rule> {
        let index = self.index();
        let mut out = Vec::new();
        for (grant, rules_ns) in index.grants(user, namespace) {
            if let Some(rules) = index.rules_of(grant, rules_ns) {
                out.extend(rules.iter().cloned());
            }
        }
        out
    }

    /// The rules of a ClusterRole, or of a Role in `namespace`.
    pub fn role_rules(&self, kind: &str, namespace: &str, name: &str) -> Option<Vec<Rule>> {
        let index = self.index();
        let rules = match kind {
            "ClusterRole" => index.cluster_roles.get(name),
            _ => index.roles.get(&(namespace.to_string(), name.to_string())),
        };
        rules.map(|r| r.as_ref().clone())
    }
}
