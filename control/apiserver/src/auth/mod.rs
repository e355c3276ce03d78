//! Who is asking, and may they (upstream `k8s.io/apiserver/pkg/authentication` and
//! `authorization`): the authenticated caller (`UserInfo`), a request's authorization
//! `Attributes`, and the parts built on them — authentication by `x509` client certificates,
//! `token_file` (static bearer tokens), `bootstrap_token` and `serviceaccount` (service-account
//! tokens and the TokenRequest issuer); `impersonation`; `authorizer`
//! (the chain: system:masters, then `node`, then `rbac`); `admission` (checks that need the
//! caller: NodeRestriction, RBAC escalation).

pub mod admission;
pub mod authorizer;
pub mod bootstrap_token;
pub mod cluster_info;
pub mod impersonation;
pub mod node;
pub mod rbac;
pub mod serviceaccount;
pub mod token_file;
pub mod x509;

pub use authorizer::{Authorizer, Decision};

/// An authenticated caller.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    /// Extra attributes (service-account tokens: the pod and node they are bound to;
    /// impersonation: `Impersonate-Extra-*`), as upstream's `user.Info.GetExtra`.
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// What a resource request is about (upstream `authorizer.Attributes`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceAttributes {
    /// Empty for cluster-scoped requests.
    pub namespace: String,
    pub api_group: String,
    pub api_version: String,
    pub resource: String,
    pub subresource: String,
    /// Empty for collection requests.
    pub name: String,
    /// `fieldSelector` of a list or watch (the Node authorizer allows a node to list only
    /// what is bound to it).
    pub field_selector: String,
}

/// A request as the authorizers see it: who, which verb, and a resource or a path.
#[derive(Clone, Debug)]
pub struct Attributes<'a> {
    pub user: &'a UserInfo,
    pub verb: String,
    pub resource: Option<ResourceAttributes>,
    /// The URL path of a non-resource request (`/healthz`, `/api`…).
    pub path: String,
}

impl Attributes<'_> {
    /// Upstream's 403 message: `pods "x" is forbidden: User "alice" cannot get resource "pods"
    /// in API group "" in the namespace "default"`, with the authorizers' reason appended.
    pub fn forbidden_message(&self, reason: &str) -> String {
        let user = &self.user.name;
        let mut message = match &self.resource {
            None => format!(
                "forbidden: User {user:?} cannot {} path {:?}",
                self.verb, self.path
            ),
            Some(r) => {
                let qualified = if r.api_group.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}.{}", r.resource, r.api_group)
                };
                let subject = if r.name.is_empty() {
                    qualified
                } else {
                    format!("{qualified} {:?}", r.name)
                };
                let resource = if r.subresource.is_empty() {
                    r.resource.clone()
                } else {
                    format!("{}/{}", r.resource, r.subresource)
                };
                let scope = if r.namespace.is_empty() {
                    "at the cluster scope".to_string()
                } else {
                    format!("in the namespace {:?}", r.namespace)
                };
                format!(
                    "{subject} is forbidden: User {user:?} cannot {} resource {resource:?} in API group {:?} {scope}",
                    self.verb, r.api_group
                )
            }
        };
        if !reason.is_empty() {
            message.push_str(": ");
            message.push_str(reason);
        }
        message
    }

    /// The 403 for this request, with upstream's `details` (name, group, kind = resource).
    pub fn forbidden(&self, reason: &str) -> crate::error::ApiError {
        let mut error = crate::error::ApiError::forbidden(self.forbidden_message(reason));
        if let Some(r) = &self.resource {
            error.details = Some(Box::new(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusDetails {
                    name: (!r.name.is_empty()).then(|| r.name.clone()),
                    group: (!r.api_group.is_empty()).then(|| r.api_group.clone()),
                    kind: Some(r.resource.clone()),
                    ..Default::default()
                },
            ));
        }
        error
    }
}
