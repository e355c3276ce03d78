//! Resource quota accounting (upstream `k8s.io/apiserver/pkg/quota/v1` and
//! `pkg/quota/v1/evaluator/core`): what an object costs against a ResourceQuota, which quotas
//! apply to it, and the arithmetic on resource lists.
//!
//! Two places use it and must agree to the unit: the ResourceQuota admission plugin
//! (`admission::resourcequota`), which charges a new object to its quotas, and the controller
//! manager's ResourceQuota controller, which recounts what a namespace holds (and so gives back
//! what deleted or finished objects used). One module serves both, as upstream's evaluators
//! serve kube-apiserver and kube-controller-manager.
//!
//! Evaluators by resource, as upstream's registry: pods (compute resources, `pods`, scopes),
//! services (`services`, `services.nodeports`, `services.loadbalancers`), persistent volume
//! claims (`requests.storage`, per storage class), and for every other namespaced resource the
//! object count `count/<resource>[.<group>]` (with the legacy aliases `configmaps`, `secrets`,
//! `replicationcontrollers`, `resourcequotas`).

pub mod claims;
pub mod pods;
pub mod services;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

pub use crate::admission::quantity::Quantity;

/// Resource name → amount (upstream `v1.ResourceList`), ordered so printing is stable.
pub type ResourceList = BTreeMap<String, Quantity>;

/// A `ResourceList` from JSON (a quota's `hard`/`used`, a container's `requests`); entries that
/// are not quantities are skipped (validation refuses them before they are stored).
pub fn parse_list(value: Option<&Value>) -> ResourceList {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), Quantity::from_json(v)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The JSON form of a list (canonical quantity strings, as the API returns them).
pub fn to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, v)| (k.clone(), json!(v.to_string())))
            .collect::<Map<String, Value>>(),
    )
}

/// Upstream `quota.Add`: every key of either, summed.
pub fn add(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    for (k, v) in b {
        out.entry(k.clone()).and_modify(|q| q.add(v)).or_insert(*v);
    }
    out
}

/// Upstream `quota.SubtractWithNonNegativeResult`: `a − b` for the keys of `a`, never below 0.
pub fn subtract_non_negative(a: &ResourceList, b: &ResourceList) -> ResourceList {
    a.iter()
        .map(|(k, v)| {
            let mut q = *v;
            if let Some(other) = b.get(k) {
                q.sub(other);
            }
            if q.is_negative() {
                q = Quantity::ZERO;
            }
            (k.clone(), q)
        })
        .collect()
}

/// Upstream `quota.Mask`: only the entries named.
pub fn mask(list: &ResourceList, names: &[String]) -> ResourceList {
    list.iter()
        .filter(|(k, _)| names.contains(k))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// Upstream `quota.LessThanOrEqual`: whether every entry of `a` that `b` limits is within it,
/// and the names that are not.
pub fn less_than_or_equal(a: &ResourceList, b: &ResourceList) -> (bool, Vec<String>) {
    let exceeded: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k).is_some_and(|limit| *v > limit))
        .map(|(k, _)| k.clone())
        .collect();
    (exceeded.is_empty(), exceeded)
}

/// Upstream `quota.RemoveZeros`.
pub fn remove_zeros(list: &ResourceList) -> ResourceList {
    list.iter()
        .filter(|(_, v)| !v.is_zero())
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// Upstream `quota.IsNegative`: the names of negative entries.
pub fn negative(list: &ResourceList) -> Vec<String> {
    list.iter()
        .filter(|(_, v)| v.is_negative())
        .map(|(k, _)| k.clone())
        .collect()
}

/// Upstream admission's `prettyPrint`: `name=amount` pairs, sorted, comma-separated.
pub fn pretty(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Upstream `prettyPrintResourceNames`.
pub fn pretty_names(names: &[String]) -> String {
    let mut sorted = names.to_vec();
    sorted.sort();
    sorted.join(",")
}

/// Upstream `ObjectCountQuotaResourceNameFor`: `count/pods`, `count/deployments.apps`.
pub fn object_count_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

/// The legacy object-count names upstream keeps beside `count/…` (registry.go's
/// `legacyObjectCountAliases`; `pods`, `services` and `persistentvolumeclaims` are their
/// evaluators' own).
pub fn legacy_alias(group: &str, resource: &str) -> Option<&'static str> {
    if !group.is_empty() {
        return None;
    }
    match resource {
        "configmaps" => Some("configmaps"),
        "resourcequotas" => Some("resourcequotas"),
        "replicationcontrollers" => Some("replicationcontrollers"),
        "secrets" => Some("secrets"),
        _ => None,
    }
}

/// The `(group, resource)` whose objects a quota'd name counts — what the controller lists to
/// recount it: `count/widgets.example.com` → `("example.com", "widgets")`, `requests.cpu` →
/// pods, `services.nodeports` → services, `gold.storageclass.storage.k8s.io/requests.storage`
/// → claims. None for a name nothing counts.
pub fn counted_by(name: &str) -> Option<(String, String)> {
    let core = |resource: &str| Some((String::new(), resource.to_string()));
    if let Some(rest) = name.strip_prefix("count/") {
        return Some(match rest.split_once('.') {
            Some((resource, group)) => (group.to_string(), resource.to_string()),
            None => (String::new(), rest.to_string()),
        });
    }
    for (group, resource) in [
        ("", "configmaps"),
        ("", "resourcequotas"),
        ("", "replicationcontrollers"),
        ("", "secrets"),
    ] {
        if legacy_alias(group, resource) == Some(name) {
            return core(resource);
        }
    }
    if services::RESOURCES.contains(&name) {
        core("services")
    } else if claims::is_claim_resource(name) {
        core("persistentvolumeclaims")
    } else if pods::is_pod_resource(name) {
        core("pods")
    } else {
        None
    }
}

/// One requirement of a quota's scope (upstream `ScopedResourceSelectorRequirement`); a plain
/// `spec.scopes` entry is `{scope, Exists}`.
#[derive(Clone, Debug, PartialEq)]
pub struct ScopeSelector {
    pub scope_name: String,
    pub operator: String,
    pub values: Vec<String>,
}

/// What a quota says, as the evaluators read it.
#[derive(Clone, Debug)]
pub struct Quota {
    pub name: String,
    pub namespace: String,
    pub spec_hard: ResourceList,
    /// `status.hard`: the limits in force (the controller copies `spec.hard` here).
    pub hard: ResourceList,
    pub used: ResourceList,
    /// Whether `status.used` was written at all.
    pub has_used: bool,
    pub selectors: Vec<ScopeSelector>,
}

impl Quota {
    pub fn from_json(quota: &Value) -> Quota {
        let text = |p: &str| {
            quota
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut selectors: Vec<ScopeSelector> = quota
            .pointer("/spec/scopes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|s| ScopeSelector {
                scope_name: s.to_string(),
                operator: "Exists".into(),
                values: vec![],
            })
            .collect();
        selectors.extend(
            quota
                .pointer("/spec/scopeSelector/matchExpressions")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|e| ScopeSelector {
                    scope_name: e["scopeName"].as_str().unwrap_or_default().to_string(),
                    operator: e["operator"].as_str().unwrap_or_default().to_string(),
                    values: e["values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                }),
        );
        Quota {
            name: text("/metadata/name"),
            namespace: text("/metadata/namespace"),
            spec_hard: parse_list(quota.pointer("/spec/hard")),
            hard: parse_list(quota.pointer("/status/hard")),
            used: parse_list(quota.pointer("/status/used")),
            has_used: quota.pointer("/status/used").is_some_and(Value::is_object),
            selectors,
        }
    }

    pub fn hard_names(&self) -> Vec<String> {
        self.hard.keys().cloned().collect()
    }
}

/// The evaluator for one resource (upstream's `quota.Evaluator` implementations).
#[derive(Clone, Debug, PartialEq)]
pub enum Evaluator {
    Pods,
    Services,
    Claims,
    /// Any other resource: its object count, and a legacy alias where upstream has one.
    Count {
        name: String,
        alias: Option<&'static str>,
    },
}

/// Whether admission is looking at a create or an update.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Operation {
    Create,
    Update,
}

impl Evaluator {
    pub fn for_resource(group: &str, resource: &str) -> Evaluator {
        match (group, resource) {
            ("", "pods") => Evaluator::Pods,
            ("", "services") => Evaluator::Services,
            ("", "persistentvolumeclaims") => Evaluator::Claims,
            _ => Evaluator::Count {
                name: object_count_name(group, resource),
                alias: legacy_alias(group, resource),
            },
        }
    }

    /// Upstream `Handles`: which writes the evaluator charges. Pods on create, and on an
    /// update that moves them between the Terminating and NotTerminating scopes; services and
    /// claims on create and update; everything else on create only.
    pub fn handles(&self, operation: Operation, old: Option<&Value>, new: &Value) -> bool {
        match (self, operation) {
            (_, Operation::Create) => true,
            (Evaluator::Pods, Operation::Update) => {
                old.is_some_and(|old| pods::is_terminating(old) != pods::is_terminating(new))
            }
            (Evaluator::Services | Evaluator::Claims, Operation::Update) => true,
            (Evaluator::Count { .. }, Operation::Update) => false,
        }
    }

    /// Upstream `Usage`: what the object costs.
    pub fn usage(&self, object: &Value, now: jiff::Timestamp) -> ResourceList {
        match self {
            Evaluator::Pods => pods::usage(object, now),
            Evaluator::Services => services::usage(object),
            Evaluator::Claims => claims::usage(object),
            Evaluator::Count { name, alias } => {
                let mut list = ResourceList::new();
                list.insert(name.clone(), Quantity::from_count(1));
                if let Some(alias) = alias {
                    list.insert((*alias).to_string(), Quantity::from_count(1));
                }
                list
            }
        }
    }

    /// Upstream `MatchingResources`: which of `names` this evaluator accounts for.
    pub fn matching_resources(&self, names: &[String]) -> Vec<String> {
        names
            .iter()
            .filter(|n| match self {
                Evaluator::Pods => pods::is_pod_resource(n),
                Evaluator::Services => services::RESOURCES.contains(&n.as_str()),
                Evaluator::Claims => claims::is_claim_resource(n),
                Evaluator::Count { name, alias } => {
                    *n == name || alias.is_some_and(|a| n.as_str() == a)
                }
            })
            .cloned()
            .collect()
    }

    /// Whether the object falls in one scope requirement. Only pods have scopes (upstream's
    /// other evaluators use `MatchesNoScopeFunc`: a scoped quota never applies to them).
    pub fn matches_scope(&self, selector: &ScopeSelector, object: &Value) -> bool {
        match self {
            Evaluator::Pods => pods::matches_scope(selector, object),
            _ => false,
        }
    }

    /// Upstream `Constraints`: what the object must state for the quota to be able to count it
    /// (pods: a request or limit for every quota'd cpu/memory name, per container).
    pub fn constraints(&self, required: &[String], object: &Value) -> Result<(), String> {
        match self {
            Evaluator::Pods => pods::constraints(required, object),
            _ => Ok(()),
        }
    }
}

/// Upstream `generic.Matches`: the quota limits something this evaluator counts, and the
/// object is in every one of its scopes.
pub fn matches(quota: &Quota, evaluator: &Evaluator, object: &Value) -> bool {
    !evaluator.matching_resources(&quota.hard_names()).is_empty()
        && quota
            .selectors
            .iter()
            .all(|s| evaluator.matches_scope(s, object))
}

/// Upstream `CalculateUsageStats` for one evaluator: the summed usage of the objects in the
/// quota's scopes, for the quota's limited names this evaluator counts (each starting at 0).
pub fn usage_of<'a>(
    quota: &Quota,
    evaluator: &Evaluator,
    objects: impl IntoIterator<Item = &'a Value>,
    now: jiff::Timestamp,
) -> ResourceList {
    let names = evaluator.matching_resources(&quota.hard_names());
    let mut total: ResourceList = names
        .iter()
        .map(|n| (n.clone(), Quantity::from_count(0)))
        .collect();
    for object in objects {
        if quota
            .selectors
            .iter()
            .all(|s| evaluator.matches_scope(s, object))
        {
            total = add(&total, &mask(&evaluator.usage(object, now), &names));
        }
    }
    total
}

#[cfg(test)]
mod tests;
