//! Which requests a webhook or an admission policy applies to: upstream's admission predicates
//! (`apiserver/pkg/admission/plugin/webhook/predicates/{rules,namespace,object}`), shared by
//! webhooks (`rules`, `namespaceSelector`, `objectSelector`, `matchPolicy`) and
//! ValidatingAdmissionPolicies (`matchConstraints`, a binding's `matchResources`).
//!
//! A rule names operations, API groups, versions, resources (`*`, `pods/status`, `pods/*`,
//! `*/*`; a bare `*` is every resource but no subresource) and a scope (`Cluster`,
//! `Namespaced`, `*`; Namespace objects count as cluster-scoped). `matchPolicy: Equivalent`
//! (the default) also matches the resource under another version of its group: skiff serves
//! one version of each resource, so the request is sent as it came, never converted.

use serde_json::{Map, Value};

use super::Request;
use crate::auth::admission::Operation;
use crate::selectors::LabelSelector;

/// Upstream's operation names in rules and AdmissionRequests.
pub fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
    }
}

fn strings(list: &Value) -> impl Iterator<Item = &str> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn listed(list: &Value, wanted: &str) -> bool {
    strings(list).any(|s| s == "*" || s == wanted)
}

/// Whether one `RuleWithOperations` matches the request; `any_version`: match the resource
/// under any version of its group (matchPolicy Equivalent).
pub fn rule_matches(rule: &Value, req: &Request<'_>, any_version: bool) -> bool {
    let info = req.info;
    let sub = req.sub.map(|s| s.name()).unwrap_or_default();
    let operation = listed(&rule["operations"], operation_name(req.operation));
    let group = listed(&rule["apiGroups"], info.group);
    let version = any_version || listed(&rule["apiVersions"], info.version);
    let resource = strings(&rule["resources"]).any(|r| {
        let (res, subres) = r.split_once('/').unwrap_or((r, ""));
        (res == "*" || res == info.resource) && (subres == "*" || subres == sub)
    });
    let is_namespace = info.group.is_empty() && info.resource == "namespaces";
    let scope = match rule["scope"].as_str().unwrap_or("*") {
        "Cluster" => is_namespace || !info.namespaced,
        "Namespaced" => !is_namespace && info.namespaced,
        _ => true,
    };
    operation && group && version && resource && scope
}

/// Whether any of `rules` matches: exactly, or (matchPolicy Equivalent) under another version.
pub fn rules_match(rules: &Value, req: &Request<'_>, equivalent: bool) -> bool {
    let rules = rules.as_array().map(Vec::as_slice).unwrap_or_default();
    rules.iter().any(|r| rule_matches(r, req, false))
        || (equivalent && rules.iter().any(|r| rule_matches(r, req, true)))
}

/// A label selector (absent or `{}`: everything) against labels; an invalid selector is an
/// error, as upstream's (the configuration's validation should have refused it).
pub fn selector_matches(
    selector: &Value,
    labels: Option<&Map<String, Value>>,
) -> Result<bool, String> {
    if selector.is_null() || selector.as_object().is_some_and(Map::is_empty) {
        return Ok(true);
    }
    Ok(LabelSelector::from_object(selector)?.matches_labels(labels))
}

fn labels(object: Option<&Value>) -> Option<&Map<String, Value>> {
    object?.pointer("/metadata/labels")?.as_object()
}

/// `objectSelector`: the new object's labels or the old one's (an update that removes a label
/// still matches a selector on it; a delete has only the old object).
pub fn object_selector_matches(
    selector: &Value,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Result<bool, String> {
    let matches = |o: Option<&Value>| match o {
        Some(o) => selector_matches(selector, labels(Some(o))),
        None => Ok(false),
    };
    if selector.is_null() || selector.as_object().is_some_and(Map::is_empty) {
        return Ok(true);
    }
    Ok(matches(object)? || matches(old)?)
}

/// Whether `namespaceSelector` must be checked for this request and against which object:
/// cluster-scoped resources other than Namespaces always match (None); a Namespace is matched
/// by its own labels; anything else by its namespace's.
pub enum NamespaceSubject<'a> {
    Always,
    Own(Option<&'a Value>),
    Namespace(&'a str),
}

pub fn namespace_subject<'a>(
    req: &'a Request<'a>,
    object: Option<&'a Value>,
    old: Option<&'a Value>,
) -> NamespaceSubject<'a> {
    if req.info.group.is_empty() && req.info.resource == "namespaces" {
        return NamespaceSubject::Own(object.or(old));
    }
    match req.namespace {
        Some(ns) if !ns.is_empty() => NamespaceSubject::Namespace(ns),
        _ => NamespaceSubject::Always,
    }
}

/// `namespaceSelector` against the namespace object (or the Namespace itself).
pub fn namespace_selector_matches(
    selector: &Value,
    namespace: Option<&Value>,
) -> Result<bool, String> {
    selector_matches(selector, labels(namespace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use crate::resources::{self, Sub};
    use serde_json::json;

    fn request<'a>(
        group: &str,
        resource: &str,
        sub: Option<Sub>,
        operation: Operation,
        namespace: Option<&'a str>,
        user: &'a UserInfo,
    ) -> Request<'a> {
        let info = resources::RESOURCES
            .iter()
            .find(|r| r.group == group && r.resource == resource)
            .unwrap();
        Request {
            info,
            sub,
            operation,
            namespace,
            name: "x",
            user,
            dry_run: false,
        }
    }

    #[test]
    fn rules_match_operations_groups_versions_resources_and_scope() {
        let user = UserInfo::default();
        let create_cm = request("", "configmaps", None, Operation::Create, Some("d"), &user);
        let pod_status = request(
            "",
            "pods",
            Some(Sub::Status),
            Operation::Update,
            Some("d"),
            &user,
        );
        let create_ns = request("", "namespaces", None, Operation::Create, None, &user);
        let deploy = request(
            "apps",
            "deployments",
            None,
            Operation::Create,
            Some("d"),
            &user,
        );
        let rule = |ops: &[&str], groups: &[&str], versions: &[&str], res: &[&str], scope: &str| {
            json!({"operations": ops, "apiGroups": groups, "apiVersions": versions,
                   "resources": res, "scope": scope})
        };
        let cm = rule(&["CREATE"], &[""], &["v1"], &["configmaps"], "*");
        assert!(rule_matches(&cm, &create_cm, false));
        assert!(!rule_matches(
            &rule(&["UPDATE"], &[""], &["v1"], &["configmaps"], "*"),
            &create_cm,
            false
        ));
        assert!(rule_matches(
            &rule(&["*"], &["*"], &["*"], &["*"], "*"),
            &create_cm,
            false
        ));
        // A bare `*` is no subresource; `pods/*` and `*/*` are every one.
        let all = rule(&["*"], &["*"], &["*"], &["*"], "*");
        assert!(!rule_matches(&all, &pod_status, false));
        assert!(rule_matches(
            &rule(&["*"], &[""], &["v1"], &["pods/*"], "*"),
            &pod_status,
            false
        ));
        assert!(rule_matches(
            &rule(&["*"], &[""], &["v1"], &["*/status"], "*"),
            &pod_status,
            false
        ));
        assert!(!rule_matches(
            &rule(&["*"], &[""], &["v1"], &["pods"], "*"),
            &pod_status,
            false
        ));
        // Scopes: a Namespace is cluster-scoped.
        assert!(rule_matches(
            &rule(&["*"], &["*"], &["*"], &["*"], "Cluster"),
            &create_ns,
            false
        ));
        assert!(!rule_matches(
            &rule(&["*"], &["*"], &["*"], &["*"], "Namespaced"),
            &create_ns,
            false
        ));
        assert!(!rule_matches(
            &rule(&["*"], &["*"], &["*"], &["*"], "Cluster"),
            &create_cm,
            false
        ));
        // Equivalent: another version of the group matches, another group does not.
        let beta = json!([rule(
            &["CREATE"],
            &["apps"],
            &["v1beta1"],
            &["deployments"],
            "*"
        )]);
        assert!(!rules_match(&beta, &deploy, false));
        assert!(rules_match(&beta, &deploy, true));
        let extensions = json!([rule(
            &["CREATE"],
            &["extensions"],
            &["v1beta1"],
            &["deployments"],
            "*"
        )]);
        assert!(!rules_match(&extensions, &deploy, true));
    }

    #[test]
    fn selectors_match_new_or_old_labels() {
        let selector = json!({"matchLabels": {"team": "a"}});
        let a = json!({"metadata": {"labels": {"team": "a"}}});
        let b = json!({"metadata": {"labels": {"team": "b"}}});
        assert_eq!(object_selector_matches(&selector, Some(&a), None), Ok(true));
        assert_eq!(
            object_selector_matches(&selector, Some(&b), None),
            Ok(false)
        );
        assert_eq!(
            object_selector_matches(&selector, Some(&b), Some(&a)),
            Ok(true)
        );
        assert_eq!(
            object_selector_matches(&json!({}), Some(&b), None),
            Ok(true)
        );
        // No old object on a create: only the new one can match.
        let exists = json!({"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]});
        let skip = json!({"metadata": {"labels": {"skip": ""}}});
        assert_eq!(
            object_selector_matches(&exists, Some(&skip), None),
            Ok(false)
        );
        assert_eq!(namespace_selector_matches(&exists, Some(&a)), Ok(true));
        assert_eq!(namespace_selector_matches(&exists, Some(&skip)), Ok(false));
        assert!(selector_matches(
            &json!({"matchExpressions": [{"key": "k", "operator": "Bad"}]}),
            None
        )
        .is_err());
    }
}
