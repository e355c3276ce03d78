//! One PolicyRule and what it allows or covers (upstream `pkg/apis/rbac/v1/evaluation_helpers.go`
//! and the escalation check's `ruleCovers`).

use serde_json::Value;

use crate::auth::{Attributes, ResourceAttributes};

/// A parsed `PolicyRule`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

impl Rule {
    pub fn from_json(rule: &Value) -> Rule {
        Rule {
            verbs: strings(&rule["verbs"]),
            api_groups: strings(&rule["apiGroups"]),
            resources: strings(&rule["resources"]),
            resource_names: strings(&rule["resourceNames"]),
            non_resource_urls: strings(&rule["nonResourceURLs"]),
        }
    }

    /// The rules of a Role or ClusterRole object.
    pub fn all_of(role: &Value) -> Vec<Rule> {
        role["rules"]
            .as_array()
            .map(|rules| rules.iter().map(Rule::from_json).collect())
            .unwrap_or_default()
    }

    pub fn to_json(&self) -> Value {
        let mut o = serde_json::Map::new();
        o.insert("verbs".into(), self.verbs.clone().into());
        let mut put = |k: &str, v: &Vec<String>| {
            if !v.is_empty() {
                o.insert(k.into(), v.clone().into());
            }
        };
        put("apiGroups", &self.api_groups);
        put("resources", &self.resources);
        put("resourceNames", &self.resource_names);
        put("nonResourceURLs", &self.non_resource_urls);
        Value::Object(o)
    }

    fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == "*" || v == verb)
    }

    /// Whether this rule allows the request.
    pub fn allows(&self, attrs: &Attributes) -> bool {
        if !self.verb_matches(&attrs.verb) {
            return false;
        }
        match &attrs.resource {
            Some(r) => self.allows_resource(r),
            None => self.allows_path(&attrs.path),
        }
    }

    fn allows_resource(&self, r: &ResourceAttributes) -> bool {
        let group = self
            .api_groups
            .iter()
            .any(|g| g == "*" || *g == r.api_group);
        if !group {
            return false;
        }
        let combined = if r.subresource.is_empty() {
            None
        } else {
            Some(format!("{}/{}", r.resource, r.subresource))
        };
        let resource = self.resources.iter().any(|res| {
            res == "*"
                || match &combined {
                    None => *res == r.resource,
                    Some(c) => {
                        res == c
                            || res
                                .strip_prefix("*/")
                                .is_some_and(|sub| sub == r.subresource)
                    }
                }
        });
        resource && (self.resource_names.is_empty() || self.resource_names.contains(&r.name))
    }

    fn allows_path(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|url| {
            url == "*"
                || url == path
                || url
                    .strip_suffix('*')
                    .is_some_and(|prefix| path.starts_with(prefix))
        })
    }

    /// Splits the rule into rules of one verb, group, resource and name each (upstream's
    /// `BreakdownRule`), the unit the escalation check covers one by one.
    pub fn breakdown(&self) -> Vec<Rule> {
        let one = |s: &String| vec![s.clone()];
        let mut out = Vec::new();
        for group in &self.api_groups {
            for resource in &self.resources {
                for verb in &self.verbs {
                    if self.resource_names.is_empty() {
                        out.push(Rule {
                            verbs: one(verb),
                            api_groups: one(group),
                            resources: one(resource),
                            ..Rule::default()
                        });
                    }
                    for name in &self.resource_names {
                        out.push(Rule {
                            verbs: one(verb),
                            api_groups: one(group),
                            resources: one(resource),
                            resource_names: one(name),
                            ..Rule::default()
                        });
                    }
                }
            }
        }
        for url in &self.non_resource_urls {
            for verb in &self.verbs {
                out.push(Rule {
                    verbs: one(verb),
                    non_resource_urls: one(url),
                    ..Rule::default()
                });
            }
        }
        out
    }

    /// Whether this (owner's) rule grants everything `requested` grants (upstream `ruleCovers`).
    pub fn covers(&self, requested: &Rule) -> bool {
        let has_all = |owner: &[String], wanted: &[String]| {
            owner.iter().any(|o| o == "*") || wanted.iter().all(|w| owner.contains(w))
        };
        let resources_covered = requested.resources.iter().all(|want| {
            self.resources.iter().any(|own| {
                own == "*"
                    || own == want
                    // "*/status" covers "pods/status".
                    || own.strip_prefix("*/").is_some_and(|sub| {
                        want.split_once('/').is_some_and(|(_, s)| s == sub)
                    })
            })
        });
        let urls_covered = requested.non_resource_urls.iter().all(|want| {
            self.non_resource_urls.iter().any(|own| {
                own == "*"
                    || own == want
                    || own
                        .strip_suffix('*')
                        .is_some_and(|prefix| want.starts_with(prefix))
            })
        });
        let names_covered = self.resource_names.is_empty()
            || (!requested.resource_names.is_empty()
                && requested
                    .resource_names
                    .iter()
                    .all(|n| self.resource_names.contains(n)));
        has_all(&self.verbs, &requested.verbs)
            && has_all(&self.api_groups, &requested.api_groups)
            && resources_covered
            && urls_covered
            && names_covered
    }

    /// Upstream's compact rendering in escalation errors:
    /// `{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`.
    pub fn compact(&self) -> String {
        let list = |v: &[String]| {
            v.iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut parts = Vec::new();
        if !self.api_groups.is_empty() {
            parts.push(format!("APIGroups:[{}]", list(&self.api_groups)));
        }
        if !self.resources.is_empty() {
            parts.push(format!("Resources:[{}]", list(&self.resources)));
        }
        if !self.resource_names.is_empty() {
            parts.push(format!("ResourceNames:[{}]", list(&self.resource_names)));
        }
        if !self.non_resource_urls.is_empty() {
            parts.push(format!(
                "NonResourceURLs:[{}]",
                list(&self.non_resource_urls)
            ));
        }
        parts.push(format!("Verbs:[{}]", list(&self.verbs)));
        format!("{{{}}}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserInfo;
    use serde_json::json;

    fn attrs<'a>(
        user: &'a UserInfo,
        verb: &str,
        group: &str,
        resource: &str,
        sub: &str,
        name: &str,
    ) -> Attributes<'a> {
        Attributes {
            user,
            verb: verb.into(),
            resource: Some(ResourceAttributes {
                namespace: "default".into(),
                api_group: group.into(),
                resource: resource.into(),
                subresource: sub.into(),
                name: name.into(),
                ..Default::default()
            }),
            path: String::new(),
        }
    }

    #[test]
    fn resource_matching_follows_upstream() {
        let u = UserInfo::default();
        let rule = Rule::from_json(
            &json!({"apiGroups": [""], "resources": ["pods", "*/status"], "verbs": ["get", "list"]}),
        );
        assert!(rule.allows(&attrs(&u, "get", "", "pods", "", "x")));
        assert!(!rule.allows(&attrs(&u, "get", "", "pods", "log", "x")));
        assert!(rule.allows(&attrs(&u, "get", "", "nodes", "status", "x")));
        assert!(!rule.allows(&attrs(&u, "delete", "", "pods", "", "x")));
        assert!(!rule.allows(&attrs(&u, "get", "apps", "pods", "", "x")));
        let named = Rule::from_json(
            &json!({"apiGroups": ["*"], "resources": ["*"], "resourceNames": ["a"], "verbs": ["*"]}),
        );
        assert!(named.allows(&attrs(&u, "update", "apps", "deployments", "scale", "a")));
        assert!(!named.allows(&attrs(&u, "list", "apps", "deployments", "", "")));
    }

    #[test]
    fn paths_match_exactly_or_by_trailing_star() {
        let u = UserInfo::default();
        let rule =
            Rule::from_json(&json!({"nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"]}));
        let path = |p: &str, verb: &str| Attributes {
            user: &u,
            verb: verb.into(),
            resource: None,
            path: p.into(),
        };
        assert!(rule.allows(&path("/healthz", "get")));
        assert!(!rule.allows(&path("/healthz/etcd", "get")));
        assert!(rule.allows(&path("/apis/apps/v1", "get")));
        assert!(!rule.allows(&path("/apis", "get")));
        assert!(!rule.allows(&path("/healthz", "post")));
    }

    #[test]
    fn coverage_needs_every_part_of_the_rule() {
        let owner = Rule::from_json(
            &json!({"apiGroups": [""], "resources": ["pods", "*/status"], "verbs": ["get", "list"]}),
        );
        let want = |r: Value| {
            Rule::from_json(&r)
                .breakdown()
                .iter()
                .all(|w| owner.covers(w))
        };
        assert!(want(
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]})
        ));
        assert!(want(
            json!({"apiGroups": [""], "resources": ["pods/status"], "verbs": ["list"]})
        ));
        assert!(want(
            json!({"apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"], "verbs": ["get"]})
        ));
        assert!(!want(
            json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
        ));
        assert!(!want(
            json!({"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]})
        ));
        assert!(!want(
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]})
        ));
        let named = Rule::from_json(
            &json!({"apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"], "verbs": ["get"]}),
        );
        assert!(!named.covers(&Rule::from_json(
            &json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]})
        )));
        assert_eq!(
            Rule::from_json(
                &json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
            )
            .compact(),
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}"#
        );
    }
}
