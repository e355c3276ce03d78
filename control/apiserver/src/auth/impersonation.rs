//! Impersonation (upstream `k8s.io/apiserver/pkg/endpoints/filters/impersonation.go`): the
//! `Impersonate-User`, `-Uid`, `-Group` and `-Extra-<key>` headers (`kubectl --as`,
//! `--as-group`, `--as-uid`) make a request act as someone else when the requester may
//! `impersonate` each of those attributes.

use axum::http::{HeaderMap, HeaderValue};

use super::{Attributes, Authorizer, ResourceAttributes, UserInfo};
use crate::error::{ApiError, ApiResult};
use crate::storage::Storage;

const USER: &str = "impersonate-user";
const UID: &str = "impersonate-uid";
const GROUP: &str = "impersonate-group";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// Percent-decodes an extra key (header names cannot carry every character).
fn unescape(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&key[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_lowercase()
}

/// The user the request acts as: `requester` itself without impersonation headers.
pub async fn impersonate(
    authorizer: &Authorizer,
    storage: &Storage,
    headers: &HeaderMap,
    requester: UserInfo,
) -> ApiResult<UserInfo> {
    let value = |v: &HeaderValue| v.to_str().unwrap_or_default().to_string();
    let user = headers.get(USER).map(value);
    let uid = headers.get(UID).map(value);
    let groups: Vec<String> = headers.get_all(GROUP).iter().map(value).collect();
    let mut extra = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (name, v) in headers {
        if let Some(key) = name.as_str().strip_prefix(EXTRA_PREFIX) {
            extra.entry(unescape(key)).or_default().push(value(v));
        }
    }
    let Some(user) = user else {
        if uid.is_some() || !groups.is_empty() || !extra.is_empty() {
            return Err(ApiError::bad_request(
                "requested impersonation of groups, uid or extra without impersonating a user",
            ));
        }
        return Ok(requester);
    };
    // (resource, group, namespace, name, subresource) to check, in upstream's order.
    let mut checks: Vec<(String, &str, String, String, String)> = Vec::new();
    let service_account = user
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'));
    match service_account {
        Some((ns, name)) => checks.push((
            "serviceaccounts".into(),
            "",
            ns.into(),
            name.into(),
            String::new(),
        )),
        None => checks.push((
            "users".into(),
            "",
            String::new(),
            user.clone(),
            String::new(),
        )),
    }
    for g in &groups {
        checks.push(("groups".into(), "", String::new(), g.clone(), String::new()));
    }
    if let Some(uid) = &uid {
        checks.push((
            "uids".into(),
            "authentication.k8s.io",
            String::new(),
            uid.clone(),
            String::new(),
        ));
    }
    for (key, values) in &extra {
        for v in values {
            checks.push((
                "userextras".into(),
                "authentication.k8s.io",
                String::new(),
                v.clone(),
                key.clone(),
            ));
        }
    }
    for (resource, group, namespace, name, subresource) in checks {
        let attrs = Attributes {
            user: &requester,
            verb: "impersonate".into(),
            resource: Some(ResourceAttributes {
                namespace,
                api_group: group.into(),
                resource,
                subresource,
                name,
                ..Default::default()
            }),
            path: String::new(),
        };
        let decision = authorizer.authorize_fresh(storage, &attrs).await?;
        if !decision.allowed() {
            return Err(attrs.forbidden(decision.reason()));
        }
    }
    let mut impersonated_groups = groups.clone();
    if groups.is_empty() {
        if let Some((ns, _)) = service_account {
            impersonated_groups.push("system:serviceaccounts".into());
            impersonated_groups.push(format!("system:serviceaccounts:{ns}"));
        }
    }
    let implicit = if user == "system:anonymous" {
        "system:unauthenticated"
    } else {
        "system:authenticated"
    };
    if !impersonated_groups.iter().any(|g| g == implicit) {
        impersonated_groups.push(implicit.into());
    }
    Ok(UserInfo {
        name: user,
        uid: uid.unwrap_or_default(),
        groups: impersonated_groups,
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_keys_are_unescaped_and_lowercased() {
        assert_eq!(unescape("Scopes"), "scopes");
        assert_eq!(unescape("example.com%2fteam"), "example.com/team");
        assert_eq!(unescape("bad%zz"), "bad%zz");
        assert_eq!(unescape("end%2"), "end%2");
    }
}
