//! Whether a FlowSchema matches a request (upstream's `rule.go`): one of its rules must match,
//! and a rule matches when one of its subjects names the user (by name, group or service
//! account, `*` for all) and, for a resource request, one of its resource rules covers the verb,
//! API group, resource (with `/subresource`) and namespace (`clusterScope` for requests without
//! one), or for any other request one of its non-resource rules covers the verb and path
//! (`/x/*` covers `/x` and everything below it).

use k8s_openapi::api::flowcontrol::v1::{
    FlowSchema, NonResourcePolicyRule, PolicyRulesWithSubjects, ResourcePolicyRule, Subject,
};

use super::request_info::RequestInfo;
use crate::auth::UserInfo;

pub fn matches_flow_schema(schema: &FlowSchema, info: &RequestInfo, user: &UserInfo) -> bool {
    schema
        .spec
        .rules
        .as_ref()
        .is_some_and(|rules| rules.iter().any(|r| matches_rule(r, info, user)))
}

fn matches_rule(rule: &PolicyRulesWithSubjects, info: &RequestInfo, user: &UserInfo) -> bool {
    if !rule.subjects.iter().any(|s| matches_subject(s, user)) {
        return false;
    }
    if info.is_resource_request {
        rule.resource_rules
            .iter()
            .flatten()
            .any(|r| matches_resource_rule(r, info))
    } else {
        rule.non_resource_rules
            .iter()
            .flatten()
            .any(|r| matches_non_resource_rule(r, info))
    }
}

fn matches_subject(subject: &Subject, user: &UserInfo) -> bool {
    match subject.kind.as_str() {
        "User" => subject
            .user
            .as_ref()
            .is_some_and(|u| u.name == "*" || u.name == user.name),
        "Group" => subject
            .group
            .as_ref()
            .is_some_and(|g| g.name == "*" || user.groups.contains(&g.name)),
        "ServiceAccount" => subject.service_account.as_ref().is_some_and(|sa| {
            let Some(rest) = user.name.strip_prefix("system:serviceaccount:") else {
                return false;
            };
            if sa.name == "*" {
                // Upstream's prefix test: the namespace, then the separator.
                rest.strip_prefix(sa.namespace.as_str())
                    .is_some_and(|r| r.starts_with(':'))
            } else {
                rest == format!("{}:{}", sa.namespace, sa.name)
            }
        }),
        _ => false,
    }
}

fn matches_resource_rule(rule: &ResourcePolicyRule, info: &RequestInfo) -> bool {
    let resource = if info.subresource.is_empty() {
        info.resource.clone()
    } else {
        format!("{}/{}", info.resource, info.subresource)
    };
    if !contains(&rule.verbs, &info.verb, "*")
        || !contains(&rule.resources, &resource, "*")
        || !contains(&rule.api_groups, &info.api_group, "*")
    {
        return false;
    }
    if info.namespace.is_empty() {
        return rule.cluster_scope.unwrap_or(false);
    }
    contains(
        rule.namespaces.as_deref().unwrap_or_default(),
        &info.namespace,
        "*",
    )
}

fn matches_non_resource_rule(rule: &NonResourcePolicyRule, info: &RequestInfo) -> bool {
    if !contains(&rule.verbs, &info.verb, "*") {
        return false;
    }
    rule.non_resource_urls.iter().any(|url| {
        if url == "*" || *url == info.path {
            return true;
        }
        let mut prefix = url.trim_end_matches('*').to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        info.path.starts_with(&prefix)
    })
}

/// Upstream's `containsString`: the wildcard counts only as the list's only entry.
fn contains(list: &[String], value: &str, wildcard: &str) -> bool {
    if list.len() == 1 && list[0] == wildcard {
        return true;
    }
    list.iter().any(|v| v == value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;
    use serde_json::json;

    fn schema(rules: serde_json::Value) -> FlowSchema {
        serde_json::from_value(json!({
            "metadata": {"name": "s"},
            "spec": {"priorityLevelConfiguration": {"name": "p"}, "rules": rules}
        }))
        .unwrap()
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    fn req(method: Method, path: &str) -> RequestInfo {
        RequestInfo::new(&method, path, &[])
    }

    #[test]
    fn subjects() {
        let rules = |subject: serde_json::Value| {
            schema(
                json!([{"subjects": [subject], "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}]),
            )
        };
        let r = req(Method::GET, "/healthz");
        let alice = user("alice", &["team", "system:authenticated"]);
        let sa = user("system:serviceaccount:kube-system:coredns", &[]);
        let by_user = rules(json!({"kind": "User", "user": {"name": "alice"}}));
        assert!(matches_flow_schema(&by_user, &r, &alice));
        assert!(!matches_flow_schema(&by_user, &r, &sa));
        let any_user = rules(json!({"kind": "User", "user": {"name": "*"}}));
        assert!(matches_flow_schema(&any_user, &r, &sa));
        let group = rules(json!({"kind": "Group", "group": {"name": "team"}}));
        assert!(matches_flow_schema(&group, &r, &alice));
        assert!(!matches_flow_schema(&group, &r, &sa));
        let one_sa = rules(
            json!({"kind": "ServiceAccount", "serviceAccount": {"namespace": "kube-system", "name": "coredns"}}),
        );
        assert!(matches_flow_schema(&one_sa, &r, &sa));
        let ns_sas = rules(
            json!({"kind": "ServiceAccount", "serviceAccount": {"namespace": "kube-system", "name": "*"}}),
        );
        assert!(matches_flow_schema(&ns_sas, &r, &sa));
        assert!(!matches_flow_schema(
            &ns_sas,
            &r,
            &user("system:serviceaccount:kube-systemx:a", &[])
        ));
        // A kind without its member matches nothing.
        assert!(!matches_flow_schema(
            &rules(json!({"kind": "User"})),
            &r,
            &alice
        ));
    }

    #[test]
    fn resource_rules() {
        let s = schema(json!([{
            "subjects": [{"kind": "Group", "group": {"name": "*"}}],
            "resourceRules": [
                {"verbs": ["list", "get"], "apiGroups": [""], "resources": ["pods", "pods/status"], "namespaces": ["team"]},
                {"verbs": ["*"], "apiGroups": ["apps"], "resources": ["*"], "clusterScope": true, "namespaces": ["*"]},
            ]
        }]));
        let u = user("bob", &[]);
        let m = |method, path| matches_flow_schema(&s, &req(method, path), &u);
        assert!(m(Method::GET, "/api/v1/namespaces/team/pods"));
        assert!(m(Method::GET, "/api/v1/namespaces/team/pods/p/status"));
        assert!(!m(Method::GET, "/api/v1/namespaces/team/pods/p/log"));
        assert!(!m(Method::GET, "/api/v1/namespaces/other/pods"));
        assert!(!m(Method::GET, "/api/v1/pods"), "no cluster scope");
        assert!(!m(Method::POST, "/api/v1/namespaces/team/pods"));
        assert!(m(
            Method::DELETE,
            "/apis/apps/v1/namespaces/x/deployments/d"
        ));
        assert!(m(Method::GET, "/apis/apps/v1/deployments"));
        // A resource rule never matches a non-resource request.
        assert!(!m(Method::GET, "/healthz"));
    }

    #[test]
    fn non_resource_rules() {
        let s = schema(json!([{
            "subjects": [{"kind": "Group", "group": {"name": "*"}}],
            "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/readyz/*", "/openapi"]}]
        }]));
        let u = user("bob", &[]);
        let m = |method, path| matches_flow_schema(&s, &req(method, path), &u);
        assert!(m(Method::GET, "/healthz"));
        assert!(m(Method::GET, "/readyz/etcd"));
        assert!(
            m(Method::GET, "/openapi/v2"),
            "a rule path covers what is below it"
        );
        assert!(!m(Method::GET, "/healthzx"));
        assert!(!m(Method::POST, "/healthz"));
        assert!(!m(Method::GET, "/api/v1/namespaces/a/pods"));
    }

    #[test]
    fn wildcard_only_alone() {
        assert!(contains(&["*".into()], "x", "*"));
        assert!(!contains(&["*".into(), "y".into()], "x", "*"));
    }
}
