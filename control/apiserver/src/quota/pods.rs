//! What a pod costs (upstream `pkg/quota/v1/evaluator/core/pods.go`): `count/pods` always,
//! and while the pod is alive (not Succeeded or Failed, not past its deletion grace period)
//! `pods` and its compute resources — requests and limits as the scheduler sums them (regular
//! containers plus sidecars, or the largest init container if more, plus the overhead). Scopes:
//! Terminating/NotTerminating (`activeDeadlineSeconds`), BestEffort/NotBestEffort (QoS),
//! PriorityClass (a selector on `priorityClassName`) and CrossNamespacePodAffinity.

use serde_json::Value;

use super::{add, parse_list, Quantity, ResourceList, ScopeSelector};

/// The names the pod evaluator counts (upstream `podResources`), besides the prefixed ones.
const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];

/// The names whose presence in a quota makes every container state them (upstream's
/// `validationSet`, a backward-compatibility rule).
const MUST_SPECIFY: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// Upstream `helper.IsNativeResource`: no domain, or a `kubernetes.io/` one.
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// An extended resource a container may request (`example.com/gpu`), quota'd only as
/// `requests.<name>` (no overcommit, so no limits).
fn is_extended(name: &str) -> bool {
    !is_native(name) && !name.starts_with("requests.")
}

/// Whether the pod evaluator counts `name` (upstream `MatchingResources`).
pub fn is_pod_resource(name: &str) -> bool {
    POD_RESOURCES.contains(&name)
        || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-")
        || (name.starts_with("requests.") && !is_native(name))
}

/// Upstream `IsTerminating`: the pod has an active deadline.
pub fn is_terminating(pod: &Value) -> bool {
    pod.pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|s| s >= 0)
}

fn is_best_effort(pod: &Value) -> bool {
    if let Some(class) = pod.pointer("/status/qosClass").and_then(Value::as_str) {
        return class == "BestEffort";
    }
    let spec = &pod["spec"];
    let states_cpu_or_memory = |resources: &Value| {
        ["requests", "limits"].iter().any(|kind| {
            resources[*kind]
                .as_object()
                .is_some_and(|m| m.contains_key("cpu") || m.contains_key("memory"))
        })
    };
    let containers = ["containers", "initContainers"]
        .iter()
        .flat_map(|f| spec[*f].as_array().into_iter().flatten());
    !states_cpu_or_memory(&spec["resources"])
        && !containers
            .into_iter()
            .any(|c| states_cpu_or_memory(&c["resources"]))
}

fn uses_cross_namespace_affinity(pod: &Value) -> bool {
    let cross = |term: &Value| {
        term["namespaces"].as_array().is_some_and(|n| !n.is_empty())
            || !term["namespaceSelector"].is_null()
    };
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let affinity = &pod["spec"]["affinity"][*kind];
        affinity["requiredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten()
            .any(cross)
            || affinity["preferredDuringSchedulingIgnoredDuringExecution"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|w| cross(&w["podAffinityTerm"]))
    })
}

/// Upstream `podMatchesScopeFunc`.
pub fn matches_scope(selector: &ScopeSelector, pod: &Value) -> bool {
    match selector.scope_name.as_str() {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "PriorityClass" => {
            // A label selector over {PriorityClass: <name>} (no entry without a class).
            let class = pod
                .pointer("/spec/priorityClassName")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty());
            match selector.operator.as_str() {
                "Exists" => class.is_some(),
                "DoesNotExist" => class.is_none(),
                "In" => class.is_some_and(|c| selector.values.iter().any(|v| v == c)),
                "NotIn" => !class.is_some_and(|c| selector.values.iter().any(|v| v == c)),
                _ => false,
            }
        }
        "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(pod),
        _ => false,
    }
}

/// Upstream `QuotaV1Pod`: a pod is charged for compute while it is not terminal and not stuck
/// terminating past its grace period (a lost node must not block scaling up elsewhere).
fn is_charged(pod: &Value, now: jiff::Timestamp) -> bool {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    let deleted = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    if let (Some(deleted), Some(grace)) = (deleted, grace) {
        if let Ok(deadline) = deleted.checked_add(jiff::SignedDuration::from_secs(grace)) {
            if now > deadline {
                return false;
            }
        }
    }
    true
}

/// Per key, the larger of the two.
fn max(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    for (k, v) in b {
        match out.get(k) {
            Some(current) if current >= v => {}
            _ => {
                out.insert(k.clone(), *v);
            }
        }
    }
    out
}

/// Upstream `resourcehelper.PodRequests`/`PodLimits` for `kind` ("requests" or "limits"):
/// containers plus restartable (sidecar) init containers, or the largest regular init
/// container with the sidecars started before it if more; then the overhead; pod-level
/// `spec.resources` for cpu and memory wins where set.
fn pod_resources(pod: &Value, kind: &str) -> ResourceList {
    let spec = &pod["spec"];
    let of = |c: &Value| parse_list(c.pointer(&format!("/resources/{kind}")));
    let mut total = ResourceList::new();
    for c in spec["containers"].as_array().into_iter().flatten() {
        total = add(&total, &of(c));
    }
    let mut sidecars = ResourceList::new();
    let mut init_peak = ResourceList::new();
    for c in spec["initContainers"].as_array().into_iter().flatten() {
        let own = of(c);
        let candidate = if c["restartPolicy"].as_str() == Some("Always") {
            sidecars = add(&sidecars, &own);
            sidecars.clone()
        } else {
            add(&own, &sidecars)
        };
        init_peak = max(&init_peak, &candidate);
    }
    total = max(&add(&total, &sidecars), &init_peak);
    let pod_level = parse_list(spec.pointer(&format!("/resources/{kind}")));
    for name in ["cpu", "memory"] {
        if let Some(q) = pod_level.get(name) {
            total.insert(name.to_string(), *q);
        }
    }
    let overhead = parse_list(spec.get("overhead"));
    for (name, q) in overhead {
        // Requests always carry the overhead; limits only where a limit is set.
        if kind == "requests" || total.contains_key(&name) {
            total.entry(name).and_modify(|v| v.add(&q)).or_insert(q);
        }
    }
    total
}

/// Upstream `podComputeUsageHelper`: the quota names for a set of requests and limits.
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("pods".into(), Quantity::from_count(1));
    for name in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(name) {
            out.insert(name.to_string(), *q);
            out.insert(format!("requests.{name}"), *q);
        }
        if let Some(q) = limits.get(name) {
            out.insert(format!("limits.{name}"), *q);
        }
    }
    for (name, q) in requests {
        if name.starts_with("hugepages-") {
            out.insert(name.clone(), *q);
            out.insert(format!("requests.{name}"), *q);
        }
        if is_extended(name) {
            out.insert(format!("requests.{name}"), *q);
        }
    }
    out
}

/// Upstream `PodUsageFunc`.
pub fn usage(pod: &Value, now: jiff::Timestamp) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("count/pods".into(), Quantity::from_count(1));
    if !is_charged(pod, now) {
        return out;
    }
    add(
        &out,
        &compute_usage(
            &pod_resources(pod, "requests"),
            &pod_resources(pod, "limits"),
        ),
    )
}

/// Upstream pod `Constraints`: with cpu or memory quota'd, every container must state them
/// (unless the pod states them at pod level). The message lists, per missing name, the
/// containers that lack it: `must specify limits.cpu for: a,b; requests.memory for: a`.
pub fn constraints(required: &[String], pod: &Value) -> Result<(), String> {
    let spec = &pod["spec"];
    let pod_level = ["requests", "limits"].iter().any(|k| {
        spec["resources"][*k]
            .as_object()
            .is_some_and(|m| m.contains_key("cpu") || m.contains_key("memory"))
    });
    if pod_level {
        return Ok(());
    }
    let required: Vec<&String> = required
        .iter()
        .filter(|r| MUST_SPECIFY.contains(&r.as_str()))
        .collect();
    let mut missing: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
        Default::default();
    for field in ["containers", "initContainers"] {
        for c in spec[field].as_array().into_iter().flatten() {
            let stated = compute_usage(
                &parse_list(c.pointer("/resources/requests")),
                &parse_list(c.pointer("/resources/limits")),
            );
            for r in &required {
                if !stated.contains_key(r.as_str()) {
                    missing
                        .entry(r.as_str())
                        .or_default()
                        .insert(c["name"].as_str().unwrap_or_default());
                }
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| {
            format!(
                "{r} for: {}",
                names.iter().copied().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Err(format!("must specify {}", parts.join("; ")))
}
