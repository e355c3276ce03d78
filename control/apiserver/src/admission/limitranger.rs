//! LimitRanger admission (upstream `plugin/pkg/admission/limitranger`): a namespace's
//! LimitRanges give pods' containers default limits (`default`) and requests
//! (`defaultRequest`), recorded in the `kubernetes.io/limit-ranger` annotation, and bound
//! containers, pods and PersistentVolumeClaims by `min`, `max` and `maxLimitRequestRatio`.
//!
//! Also here: the two defaulting rules the plugin depends on, upstream's
//! `SetDefaults_LimitRangeItem` (a LimitRange's own defaults, as the LimitRange strategy) and
//! the part of `SetDefaults_Pod` that gives a container the requests of its limits.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::quantity::{Quantity, MAX_MILLI_VALUE};
use crate::registry::Strategy;

pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

type ResourceList = BTreeMap<String, Quantity>;

/// A resource list from JSON (`{"cpu": "1", "memory": "1Gi"}`); entries that do not parse are
/// left out (validation answers for them).
fn resource_list(v: Option<&Value>) -> ResourceList {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, q)| Some((k.clone(), Quantity::from_json(q)?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Upstream `SetDefaults_LimitRangeItem` on every item of a LimitRange: a Container item's
/// `default` comes from `max`, its `defaultRequest` from `default`, then from `min`.
pub fn default_limit_range(object: &mut Value) {
    let Some(items) = object
        .pointer_mut("/spec/limits")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for item in items.iter_mut().filter_map(Value::as_object_mut) {
        if item.get("type").and_then(Value::as_str) != Some("Container") {
            continue;
        }
        let from = |item: &Map<String, Value>, key: &str| -> Map<String, Value> {
            item.get(key)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let max = from(item, "max");
        let min = from(item, "min");
        let mut default = from(item, "default");
        for (k, v) in &max {
            default.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let mut default_request = from(item, "defaultRequest");
        for (k, v) in default.iter().chain(min.iter()) {
            default_request
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        // Empty maps are omitted on the wire, as upstream's omitempty.
        for (key, value) in [("default", default), ("defaultRequest", default_request)] {
            if value.is_empty() {
                item.remove(key);
            } else {
                item.insert(key.into(), Value::Object(value));
            }
        }
    }
}

/// The LimitRange strategy: upstream's defaulting of its items.
pub struct LimitRanges;

pub static LIMIT_RANGES: LimitRanges = LimitRanges;

impl Strategy for LimitRanges {
    fn default(&self, object: &mut Value) {
        default_limit_range(object);
    }
}

/// Upstream `SetDefaults_Pod`'s resource rule: a container (or init container) with limits gets
/// the same requests for every resource it requests nothing of. Pods only, not templates.
pub fn default_requests_from_limits(pod: &mut Value) {
    for list in ["containers", "initContainers"] {
        let Some(containers) = pod
            .pointer_mut(&format!("/spec/{list}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in containers.iter_mut() {
            let Some(limits) = c
                .pointer("/resources/limits")
                .and_then(Value::as_object)
                .cloned()
            else {
                continue;
            };
            let Some(resources) = c.get_mut("resources").and_then(Value::as_object_mut) else {
                continue;
            };
            if !resources.get("requests").is_some_and(Value::is_object) {
                resources.insert("requests".into(), json!({}));
            }
            let requests = resources["requests"]
                .as_object_mut()
                .expect("requests is an object");
            for (k, v) in limits {
                requests.entry(k).or_insert(v);
            }
            if requests.is_empty() {
                resources.remove("requests");
            }
        }
    }
}

/// The LimitRanges of `namespace` among `all`.
pub fn in_namespace(all: Vec<Arc<Value>>, namespace: &str) -> Vec<Arc<Value>> {
    all.into_iter()
        .filter(|lr| lr.pointer("/metadata/namespace").and_then(Value::as_str) == Some(namespace))
        .collect()
}

/// A LimitRange's items, as upstream reads them after its defaulting.
fn items(limit_range: &Value) -> Vec<Value> {
    let mut defaulted = limit_range.clone();
    default_limit_range(&mut defaulted);
    defaulted
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Upstream `PodMutateLimitFunc` for each LimitRange in turn: missing limits and requests come
/// from the Container items' `default` and `defaultRequest`; the annotation says what was set.
pub fn mutate_pod(limit_ranges: &[Arc<Value>], pod: &mut Value) {
    for limit_range in limit_ranges {
        let mut defaults_limits = Map::new();
        let mut defaults_requests = Map::new();
        for item in items(limit_range) {
            if item["type"] != "Container" {
                continue;
            }
            for (target, key) in [
                (&mut defaults_requests, "defaultRequest"),
                (&mut defaults_limits, "default"),
            ] {
                if let Some(m) = item.get(key).and_then(Value::as_object) {
                    target.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        let mut notes = Vec::new();
        for (list, prefix) in [
            ("containers", "container"),
            ("initContainers", "init container"),
        ] {
            let Some(containers) = pod
                .pointer_mut(&format!("/spec/{list}"))
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let set_limits = merge(c, "limits", &defaults_limits);
                let set_requests = merge(c, "requests", &defaults_requests);
                if !set_requests.is_empty() {
                    notes.push(format!(
                        "{} request for {prefix} {name}",
                        set_requests.join(", ")
                    ));
                }
                if !set_limits.is_empty() {
                    notes.push(format!(
                        "{} limit for {prefix} {name}",
                        set_limits.join(", ")
                    ));
                }
            }
        }
        if !notes.is_empty() {
            let Some(root) = pod.as_object_mut() else {
                return;
            };
            let metadata = crate::registry::fields::child(root, "metadata");
            let annotations = crate::registry::fields::child(metadata, "annotations");
            annotations.insert(
                ANNOTATION.into(),
                json!(format!("LimitRanger plugin set: {}", notes.join("; "))),
            );
        }
    }
}

/// Sets the `defaults` a container's `resources.<field>` lacks; answers the names set, sorted.
fn merge(
    container: &mut Map<String, Value>,
    field: &str,
    defaults: &Map<String, Value>,
) -> Vec<String> {
    if defaults.is_empty() {
        return Vec::new();
    }
    let resources = crate::registry::fields::child(container, "resources");
    let target = crate::registry::fields::child(resources, field);
    let mut set = Vec::new();
    for (k, v) in defaults {
        if !target.contains_key(k) {
            target.insert(k.clone(), v.clone());
            set.push(k.clone());
        }
    }
    if target.is_empty() {
        resources.remove(field);
    }
    set.sort();
    set
}

/// Upstream `requestLimitEnforcedValues`: milli-units when all three fit, else whole units.
fn observed(request: &Quantity, limit: &Quantity, enforced: &Quantity) -> (i64, i64, i64) {
    let (r, l, e) = (request.value(), limit.value(), enforced.value());
    if r <= MAX_MILLI_VALUE && l <= MAX_MILLI_VALUE && e <= MAX_MILLI_VALUE {
        (
            request.milli_value(),
            limit.milli_value(),
            enforced.milli_value(),
        )
    } else {
        (r, l, e)
    }
}

fn min_constraint(
    kind: &str,
    resource: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let req = requests.get(resource);
    let lim = limits.get(resource);
    let (r, l, e) = observed(
        req.unwrap_or(&Quantity::ZERO),
        lim.unwrap_or(&Quantity::ZERO),
        enforced,
    );
    let Some(req) = req else {
        return Some(format!(
            "minimum {resource} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    if r < e {
        return Some(format!(
            "minimum {resource} usage per {kind} is {enforced}, but request is {req}"
        ));
    }
    match lim {
        Some(lim) if l < e => Some(format!(
            "minimum {resource} usage per {kind} is {enforced}, but limit is {lim}"
        )),
        _ => None,
    }
}

fn max_constraint(
    kind: &str,
    resource: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let req = requests.get(resource);
    let lim = limits.get(resource);
    let (r, l, e) = observed(
        req.unwrap_or(&Quantity::ZERO),
        lim.unwrap_or(&Quantity::ZERO),
        enforced,
    );
    let Some(lim) = lim else {
        return Some(format!(
            "maximum {resource} usage per {kind} is {enforced}.  No limit is specified"
        ));
    };
    if l > e {
        return Some(format!(
            "maximum {resource} usage per {kind} is {enforced}, but limit is {lim}"
        ));
    }
    match req {
        Some(req) if r > e => Some(format!(
            "maximum {resource} usage per {kind} is {enforced}, but request is {req}"
        )),
        _ => None,
    }
}

fn max_request_constraint(
    kind: &str,
    resource: &str,
    enforced: &Quantity,
    requests: &ResourceList,
) -> Option<String> {
    let req = requests.get(resource);
    let (r, _, e) = observed(req.unwrap_or(&Quantity::ZERO), &Quantity::ZERO, enforced);
    let Some(req) = req else {
        return Some(format!(
            "maximum {resource} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    (r > e)
        .then(|| format!("maximum {resource} usage per {kind} is {enforced}, but request is {req}"))
}

fn ratio_constraint(
    kind: &str,
    resource: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let req = requests.get(resource);
    let lim = limits.get(resource);
    let (r, l, _) = observed(
        req.unwrap_or(&Quantity::ZERO),
        lim.unwrap_or(&Quantity::ZERO),
        enforced,
    );
    if req.is_none() || r == 0 {
        return Some(format!("{resource} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"));
    }
    if lim.is_none() || l == 0 {
        return Some(format!("{resource} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"));
    }
    let shown = l as f64 / r as f64;
    let (observed_ratio, max_ratio) = if enforced.value() <= MAX_MILLI_VALUE {
        (shown * 1000.0, enforced.milli_value() as f64)
    } else {
        (shown, enforced.value() as f64)
    };
    (observed_ratio > max_ratio).then(|| {
        format!("{resource} max limit to request ratio per {kind} is {enforced}, but provided ratio is {shown:.6}")
    })
}

/// Upstream `NewAggregate(errs).Error()`: one message alone, several (duplicates dropped) in
/// brackets.
fn aggregate(errors: Vec<String>) -> Option<String> {
    let mut unique: Vec<String> = Vec::new();
    for e in errors {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    match unique.len() {
        0 => None,
        1 => unique.pop(),
        _ => Some(format!("[{}]", unique.join(", "))),
    }
}

/// `min`, `max` and `maxLimitRequestRatio` of one item against one set of requests and limits.
fn check_item(
    item: &Value,
    kind: &str,
    requests: &ResourceList,
    limits: &ResourceList,
    errors: &mut Vec<String>,
) {
    for (resource, q) in resource_list(item.get("min")) {
        errors.extend(min_constraint(kind, &resource, &q, requests, limits));
    }
    for (resource, q) in resource_list(item.get("max")) {
        errors.extend(max_constraint(kind, &resource, &q, requests, limits));
    }
    for (resource, q) in resource_list(item.get("maxLimitRequestRatio")) {
        errors.extend(ratio_constraint(kind, &resource, &q, requests, limits));
    }
}

fn add_list(into: &mut ResourceList, from: &ResourceList) {
    for (k, q) in from {
        into.entry(k.clone())
            .and_modify(|sum| sum.add(q))
            .or_insert(*q);
    }
}

fn max_list(into: &mut ResourceList, from: &ResourceList) {
    for (k, q) in from {
        match into.get(k) {
            Some(current) if *q <= *current => {}
            _ => {
                into.insert(k.clone(), *q);
            }
        }
    }
}

/// Upstream `podRequests`/`podLimits`: the containers' sum, or the largest init container's
/// (with the sidecars started before it) when that is more; sidecars (restartable init
/// containers) count with the containers; pod-level resources (cpu, memory) win.
fn pod_total(pod: &Value, field: &str) -> ResourceList {
    let of = |c: &Value| resource_list(c.pointer(&format!("/resources/{field}")));
    let list = |name: &str| -> Vec<Value> {
        pod.pointer(&format!("/spec/{name}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut total = ResourceList::new();
    for c in list("containers") {
        add_list(&mut total, &of(&c));
    }
    let mut sidecars = ResourceList::new();
    let mut init = ResourceList::new();
    for c in list("initContainers") {
        let own = of(&c);
        let needed = if c["restartPolicy"] == "Always" {
            add_list(&mut total, &own);
            add_list(&mut sidecars, &own);
            sidecars.clone()
        } else {
            let mut tmp = ResourceList::new();
            add_list(&mut tmp, &own);
            add_list(&mut tmp, &sidecars);
            tmp
        };
        max_list(&mut init, &needed);
    }
    max_list(&mut total, &init);
    for (k, q) in resource_list(pod.pointer(&format!("/spec/resources/{field}"))) {
        if k == "cpu" || k == "memory" {
            total.insert(k, q);
        }
    }
    total
}

/// Upstream `PodValidateLimitFunc` for each LimitRange in turn: the first LimitRange a pod
/// breaks answers every error it has with it.
pub fn validate_pod(limit_ranges: &[Arc<Value>], pod: &Value) -> Result<(), String> {
    for limit_range in limit_ranges {
        let mut errors = Vec::new();
        for item in items(limit_range) {
            match item["type"].as_str() {
                Some("Container") => {
                    for list in ["containers", "initContainers"] {
                        let containers = pod
                            .pointer(&format!("/spec/{list}"))
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default();
                        for c in containers {
                            let requests = resource_list(c.pointer("/resources/requests"));
                            let limits = resource_list(c.pointer("/resources/limits"));
                            check_item(&item, "Container", &requests, &limits, &mut errors);
                        }
                    }
                }
                Some("Pod") => {
                    let requests = pod_total(pod, "requests");
                    let limits = pod_total(pod, "limits");
                    check_item(&item, "Pod", &requests, &limits, &mut errors);
                }
                _ => {}
            }
        }
        if let Some(message) = aggregate(errors) {
            return Err(message);
        }
    }
    Ok(())
}

/// Upstream `PersistentVolumeClaimValidateLimitFunc`: a claim's storage request within the
/// PersistentVolumeClaim items' `min` and `max`.
pub fn validate_pvc(limit_ranges: &[Arc<Value>], pvc: &Value) -> Result<(), String> {
    for limit_range in limit_ranges {
        let mut errors = Vec::new();
        for item in items(limit_range) {
            if item["type"] != "PersistentVolumeClaim" {
                continue;
            }
            let requests = resource_list(pvc.pointer("/spec/resources/requests"));
            let kind = "PersistentVolumeClaim";
            for (resource, q) in resource_list(item.get("min")) {
                errors.extend(min_constraint(
                    kind,
                    &resource,
                    &q,
                    &requests,
                    &ResourceList::new(),
                ));
            }
            for (resource, q) in resource_list(item.get("max")) {
                errors.extend(max_request_constraint(kind, &resource, &q, &requests));
            }
        }
        if let Some(message) = aggregate(errors) {
            return Err(message);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
