//! `pods/resize` (upstream's `podResizeStrategy` and `ValidatePodResize`, 1.37): in-place
//! resizing takes from the request only the containers' `resources` and `resizePolicy` (when
//! the containers are the same, in the same order; otherwise the request is kept whole for
//! validation to refuse), keeps the stored status and metadata — upstream's API server writes no
//! resize status of its own since 1.33: the kubelet reports `PodResizePending`/
//! `PodResizeInProgress` conditions — and refuses what upstream refuses: mirror pods,
//! Windows pods, added, removed or reordered containers, removed requests or limits, changes
//! beyond cpu and memory, a different QoS class, and pods running on a node that reports no
//! container resources. Pod-level resources (a gate off by default) cannot be resized.

use serde_json::{json, Value};

use crate::error::FieldError;

fn containers(spec: &Value, list: &str) -> Vec<Value> {
    spec[list].as_array().cloned().unwrap_or_default()
}

fn same_names(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x["name"] == y["name"])
}

/// Upstream's `dropNonResizeUpdates`.
pub fn prepare(new: &mut Value, old: &Value) {
    let (new_spec, old_spec) = (&new["spec"], &old["spec"]);
    let mut merged = Vec::new();
    for list in ["containers", "initContainers"] {
        let (n, o) = (containers(new_spec, list), containers(old_spec, list));
        if !same_names(&n, &o) {
            return;
        }
        let taken: Vec<Value> = o
            .into_iter()
            .zip(&n)
            .map(|(mut before, after)| {
                for field in ["resources", "resizePolicy"] {
                    match after.get(field) {
                        Some(v) => before[field] = v.clone(),
                        None => {
                            if let Some(c) = before.as_object_mut() {
                                c.remove(field);
                            }
                        }
                    }
                }
                before
            })
            .collect();
        merged.push((list, taken));
    }
    let mut next = old.clone();
    for (list, taken) in merged {
        if next["spec"].get(list).is_some() {
            next["spec"][list] = Value::Array(taken);
        }
    }
    if let Some(meta) = next["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
    }
    *new = next;
}

fn resources_removed(new: &Value, old: &Value) -> bool {
    let (n, o) = (new.as_object(), old.as_object());
    match (n, o) {
        (_, None) => false,
        (None, Some(o)) => !o.is_empty(),
        (Some(n), Some(o)) => o.keys().any(|k| !n.contains_key(k)),
    }
}

/// `resources` with cpu and memory taken out (what may change on resize).
fn without_cpu_memory(container: &Value) -> Value {
    let mut c = container.clone();
    for kind in ["requests", "limits"] {
        if let Some(list) = c
            .pointer_mut(&format!("/resources/{kind}"))
            .and_then(Value::as_object_mut)
        {
            list.remove("cpu");
            list.remove("memory");
            if list.is_empty() {
                c["resources"].as_object_mut().map(|r| r.remove(kind));
            }
        }
    }
    if let Some(o) = c.as_object_mut() {
        o.remove("resizePolicy");
    }
    c
}

/// Upstream's `ValidatePodResize`, the generic spec validation aside.
pub fn validate_update(old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
    if old["metadata"]["annotations"]
        .get("kubernetes.io/config.mirror")
        .is_some()
    {
        errors.clear();
        errors.push(FieldError::forbidden("", "static pods cannot be resized"));
        return;
    }
    if old.pointer("/spec/os/name").and_then(Value::as_str) == Some("windows") {
        errors.clear();
        errors.push(FieldError::forbidden("", "windows pods cannot be resized"));
        return;
    }
    let old_qos = super::qos_class(&old["spec"]);
    if old_qos != super::qos_class(&new["spec"]) {
        let shown = old
            .pointer("/status/qosClass")
            .cloned()
            .unwrap_or(json!(old_qos));
        errors.push(FieldError::invalid(
            "spec",
            &shown,
            "Pod QOS Class may not change as a result of resizing",
        ));
    }
    if !resize_supported(old) {
        errors.push(FieldError::forbidden(
            "spec",
            "Pod running on node without support for resize",
        ));
    }
    let level_set = |p: &Value| {
        ["requests", "limits"].iter().any(|k| {
            p.pointer(&format!("/spec/resources/{k}"))
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
        })
    };
    if level_set(old) || level_set(new) {
        errors.push(FieldError::forbidden(
            "",
            "resize of pods with pod-level resources is forbidden when InPlacePodLevelResourcesVerticalScalingEnabled feature gate is disabled",
        ));
        return;
    }
    let mut ordered = true;
    for (list, what) in [
        ("containers", "containers"),
        ("initContainers", "initContainers"),
    ] {
        let (n, o) = (
            containers(&new["spec"], list),
            containers(&old["spec"], list),
        );
        if n.len() != o.len() {
            ordered = false;
            errors.push(FieldError::forbidden(
                format!("spec.{list}"),
                format!("{what} may not be added or removed on resize"),
            ));
            continue;
        }
        for (i, (a, b)) in n.iter().zip(&o).enumerate() {
            if a["name"] != b["name"] {
                ordered = false;
                errors.push(FieldError::forbidden(
                    format!("spec.{list}[{i}].name"),
                    format!("{what} may not be renamed or reordered on resize"),
                ));
            }
        }
    }
    if !ordered {
        return;
    }
    let (n, o) = (
        containers(&new["spec"], "containers"),
        containers(&old["spec"], "containers"),
    );
    for (i, (a, b)) in n.iter().zip(&o).enumerate() {
        let path = format!("spec.containers[{i}].resources");
        for (kind, text) in [
            ("requests", "resource requests cannot be removed"),
            ("limits", "resource limits cannot be removed"),
        ] {
            if resources_removed(&a["resources"][kind], &b["resources"][kind]) {
                errors.push(FieldError::forbidden(format!("{path}.{kind}"), text));
            }
        }
    }
    let changed_beyond = n
        .iter()
        .zip(&o)
        .any(|(a, b)| without_cpu_memory(a) != without_cpu_memory(b));
    if changed_beyond {
        errors.push(FieldError::forbidden(
            "spec",
            "only cpu and memory resources are mutable",
        ));
    }
    // Init containers (non-sidecar ones need a gate that is off) may not change at all.
    let (ni, oi) = (
        containers(&new["spec"], "initContainers"),
        containers(&old["spec"], "initContainers"),
    );
    for (i, (a, b)) in ni.iter().zip(&oi).enumerate() {
        let sidecar = b["restartPolicy"] == "Always";
        if sidecar && without_cpu_memory(a) != without_cpu_memory(b) {
            errors.push(FieldError::forbidden(
                format!("spec.initContainers[{i}]"),
                "only cpu and memory resources for init or sidecar containers are mutable",
            ));
        } else if !sidecar && a != b {
            errors.push(FieldError::forbidden(
                format!("spec.initContainers[{i}]"),
                "resources for non-sidecar init containers are immutable",
            ));
        }
    }
}

/// Upstream's `isPodResizeRequestSupported`: a running container without reported resources
/// means a node that cannot resize.
fn resize_supported(pod: &Value) -> bool {
    for status in pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if status.pointer("/state/running").is_some() {
            return status.get("resources").is_some_and(|r| !r.is_null());
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(cpu: &str, memory_limit: Option<&str>, image: &str) -> Value {
        let mut resources = json!({"requests": {"cpu": cpu, "memory": "64Mi"}});
        if let Some(m) = memory_limit {
            resources["limits"] = json!({"memory": m});
        }
        json!({"metadata": {"name": "p", "resourceVersion": "5"},
            "spec": {"containers": [{"name": "app", "image": image, "resources": resources}]},
            "status": {"qosClass": "Burstable"}})
    }

    #[test]
    fn takes_only_resources() {
        let old = pod("100m", None, "nginx");
        let mut new = pod("200m", None, "httpd");
        prepare(&mut new, &old);
        assert_eq!(new["spec"]["containers"][0]["image"], "nginx");
        assert_eq!(
            new["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "200m"
        );
        assert!(new["metadata"].get("resourceVersion").is_none());
        let mut errors = Vec::new();
        validate_update(&old, &new, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn refusals() {
        let old = pod("100m", Some("128Mi"), "nginx");
        let mut new = pod("100m", None, "nginx");
        prepare(&mut new, &old);
        let mut errors = Vec::new();
        validate_update(&old, &new, &mut errors);
        assert_eq!(errors[0].field, "spec.containers[0].resources.limits");
        assert_eq!(
            errors[0].message,
            "Forbidden: resource limits cannot be removed"
        );

        let mut grown = old.clone();
        grown["spec"]["containers"][0]["resources"]["requests"]["ephemeral-storage"] = json!("1Gi");
        let mut errors = Vec::new();
        validate_update(&old, &grown, &mut errors);
        assert!(errors
            .iter()
            .any(|e| e.message == "Forbidden: only cpu and memory resources are mutable"));
    }
}
