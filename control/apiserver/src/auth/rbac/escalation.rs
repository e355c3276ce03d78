//! Privilege escalation prevention (upstream `pkg/registry/rbac/{role,clusterrole,rolebinding,
//! clusterrolebinding}/policybased` and `validation.ConfirmNoEscalation`): a user may write a
//! role only with rules they already hold, and bind a role only if they hold its rules or may
//! `bind` it — unless they may `escalate` (roles) or are in system:masters.

use serde_json::Value;

use super::rules::Rule;
use crate::auth::{Attributes, Authorizer, ResourceAttributes, UserInfo};
use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceInfo;

fn verb_allowed(
    authorizer: &Authorizer,
    user: &UserInfo,
    verb: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> bool {
    let attrs = Attributes {
        user,
        verb: verb.into(),
        resource: Some(ResourceAttributes {
            namespace: namespace.into(),
            api_group: "rbac.authorization.k8s.io".into(),
            api_version: "v1".into(),
            resource: resource.into(),
            name: name.into(),
            ..Default::default()
        }),
        path: String::new(),
    };
    authorizer.authorize(&attrs).allowed()
}

/// The requested rules `user` does not hold in `namespace`, in upstream's compact form, sorted.
fn not_held(
    authorizer: &Authorizer,
    user: &UserInfo,
    namespace: &str,
    rules: &[Rule],
) -> Vec<String> {
    let owned = authorizer.rbac().rules_for(user, namespace);
    let mut missing: Vec<String> = rules
        .iter()
        .flat_map(Rule::breakdown)
        .filter(|wanted| !owned.iter().any(|own| own.covers(wanted)))
        .map(|r| r.compact())
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

fn escalation_error(
    info: &ResourceInfo,
    name: &str,
    user: &UserInfo,
    missing: &[String],
) -> ApiError {
    let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    ApiError::forbidden(format!(
        "{} {name:?} is forbidden: user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        info.qualified(),
        user.name,
        groups.join(" "),
        missing.join("\n")
    ))
}

/// Checks a Role or ClusterRole about to be written by `user`.
pub fn check_role(
    authorizer: &Authorizer,
    user: &UserInfo,
    info: &ResourceInfo,
    role: &Value,
) -> ApiResult<()> {
    if user.in_group("system:masters") {
        return Ok(());
    }
    let namespace = role["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = role["metadata"]["name"].as_str().unwrap_or_default();
    if verb_allowed(authorizer, user, "escalate", info.resource, namespace, name) {
        return Ok(());
    }
    if role.get("aggregationRule").is_some_and(|a| !a.is_null()) {
        return Err(ApiError::forbidden(format!(
            "{} {name:?} is forbidden: must have cluster-admin privileges to use the aggregationRule",
            info.qualified()
        )));
    }
    let missing = not_held(authorizer, user, namespace, &Rule::all_of(role));
    if missing.is_empty() {
        Ok(())
    } else {
        Err(escalation_error(info, name, user, &missing))
    }
}

/// Checks a RoleBinding or ClusterRoleBinding about to be written by `user`.
pub fn check_binding(
    authorizer: &Authorizer,
    user: &UserInfo,
    info: &ResourceInfo,
    binding: &Value,
) -> ApiResult<()> {
    if user.in_group("system:masters") {
        return Ok(());
    }
    let namespace = binding["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    let name = binding["metadata"]["name"].as_str().unwrap_or_default();
    let kind = binding["roleRef"]["kind"].as_str().unwrap_or_default();
    let role = binding["roleRef"]["name"].as_str().unwrap_or_default();
    let role_resource = if kind == "ClusterRole" {
        "clusterroles"
    } else {
        "roles"
    };
    if verb_allowed(authorizer, user, "bind", role_resource, namespace, role) {
        return Ok(());
    }
    let Some(rules) = authorizer.rbac().role_rules(kind, namespace, role) else {
        // Upstream's wording names the binding's resource with the role's name.
        return Err(ApiError::not_found(info, role));
    };
    let missing = not_held(authorizer, user, namespace, &rules);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(escalation_error(info, name, user, &missing))
    }
}
