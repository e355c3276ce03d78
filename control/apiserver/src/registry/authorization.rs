//! authorization.k8s.io access reviews (`pkg/registry/authorization`): create-only, nothing
//! stored, answered by the API server's own authorizer chain — how `kubectl auth can-i` (SelfSubjectAccessReview,
//! and SelfSubjectRulesReview for `--list`) and other components (the kubelet's API, through
//! SubjectAccessReview) ask.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::auth::{Attributes, ResourceAttributes, UserInfo};
use crate::registry::{Review, Strategy};

fn string(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The attributes a review's spec asks about.
fn attributes<'a>(user: &'a UserInfo, spec: &Value) -> Attributes<'a> {
    if let Some(r) = spec.get("resourceAttributes").filter(|r| r.is_object()) {
        let field_selector = r
            .pointer("/fieldSelector/rawSelector")
            .map(string)
            .unwrap_or_default();
        return Attributes {
            user,
            verb: string(&r["verb"]),
            resource: Some(ResourceAttributes {
                namespace: string(&r["namespace"]),
                api_group: string(&r["group"]),
                api_version: string(&r["version"]),
                resource: string(&r["resource"]),
                subresource: string(&r["subresource"]),
                name: string(&r["name"]),
                field_selector,
            }),
            path: String::new(),
        };
    }
    let n = &spec["nonResourceAttributes"];
    Attributes {
        user,
        verb: string(&n["verb"]),
        resource: None,
        path: string(&n["path"]),
    }
}

/// Runs the review's question through the authorizer into `status`.
fn answer(review: &Review, user: &UserInfo, mut object: Value) -> Value {
    let attrs = attributes(user, &object["spec"]);
    let decision = review.authorizer.authorize(&attrs);
    let mut status = json!({"allowed": decision.allowed()});
    if !decision.reason().is_empty() {
        status["reason"] = json!(decision.reason());
    }
    object["status"] = status;
    object["metadata"]["creationTimestamp"] = Value::Null;
    object
}

/// SelfSubjectAccessReview: may the caller do this?
pub struct SelfAccessReviews;

pub static SELF_ACCESS_REVIEWS: SelfAccessReviews = SelfAccessReviews;

impl Strategy for SelfAccessReviews {
    fn review(&self, review: &Review, object: Value) -> Value {
        answer(review, review.user, object)
    }
}

/// SubjectAccessReview and LocalSubjectAccessReview: may the user in the spec do this?
pub struct AccessReviews;

pub static ACCESS_REVIEWS: AccessReviews = AccessReviews;

impl Strategy for AccessReviews {
    fn review(&self, review: &Review, mut object: Value) -> Value {
        let spec = &object["spec"];
        let extra: BTreeMap<String, Vec<String>> = spec["extra"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let values = v
                            .as_array()
                            .map(|a| a.iter().map(string).collect())
                            .unwrap_or_default();
                        (k.clone(), values)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let user = UserInfo {
            name: string(&spec["user"]),
            uid: string(&spec["uid"]),
            groups: spec["groups"]
                .as_array()
                .map(|a| a.iter().map(string).collect())
                .unwrap_or_default(),
            extra,
        };
        // A LocalSubjectAccessReview asks about its own namespace only.
        if let Some(ns) = review.namespace {
            if let Some(r) = object["spec"]["resourceAttributes"].as_object_mut() {
                r.insert("namespace".into(), json!(ns));
            }
        }
        answer(review, &user, object)
    }
}

/// SelfSubjectRulesReview: every rule the caller holds in `spec.namespace` (`kubectl auth
/// can-i --list`).
pub struct RulesReviews;

pub static RULES_REVIEWS: RulesReviews = RulesReviews;

impl Strategy for RulesReviews {
    fn review(&self, review: &Review, mut object: Value) -> Value {
        let namespace = object["spec"]["namespace"].as_str().unwrap_or_default();
        let everything =
            review.user.in_group("system:masters") || review.authorizer.always_allows();
        let (resource_rules, non_resource_rules): (Vec<Value>, Vec<Value>) = if everything {
            (
                vec![json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
                vec![json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
            )
        } else {
            let rules = review.authorizer.rbac().rules_for(review.user, namespace);
            let (resource, non_resource): (Vec<_>, Vec<_>) =
                rules.iter().partition(|r| r.non_resource_urls.is_empty());
            (
                resource.iter().map(|r| r.to_json()).collect(),
                non_resource
                    .iter()
                    .map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}))
                    .collect(),
            )
        };
        object["status"] = json!({
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": false,
        });
        object["metadata"]["creationTimestamp"] = Value::Null;
        object
    }
}
