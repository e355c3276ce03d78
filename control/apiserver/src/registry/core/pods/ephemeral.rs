//! `pods/ephemeralcontainers` (upstream's `podEphemeralContainersStrategy` and
//! `ValidatePodEphemeralContainersUpdate`): the only write that may touch
//! `spec.ephemeralContainers`, and it touches nothing else. Ephemeral containers may be added,
//! never changed or removed; each is named uniquely among all the pod's containers, targets an
//! existing container, and sets none of what a debugging container cannot have (ports, probes,
//! lifecycle, resources, restart policy, subPath mounts).

use serde_json::{json, Value};

use crate::error::FieldError;
use crate::names::is_dns1123_label;

/// The pod as stored with only `spec.ephemeralContainers` taken from the request.
pub fn prepare(new: &mut Value, old: &Value) {
    let ephemeral = new["spec"].get("ephemeralContainers").cloned();
    let mut next = old.clone();
    match ephemeral.filter(|e| !e.is_null()) {
        Some(e) => next["spec"]["ephemeralContainers"] = e,
        None => {
            if let Some(spec) = next["spec"].as_object_mut() {
                spec.remove("ephemeralContainers");
            }
        }
    }
    if let Some(meta) = next["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
    }
    *new = next;
}

/// Fields of EphemeralContainerCommon a debugging container may not set (upstream's allow
/// list, inverted), with their JSON names.
const FORBIDDEN: &[&str] = &[
    "ports",
    "resources",
    "resizePolicy",
    "restartPolicy",
    "restartPolicyRules",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
];

fn names(spec: &Value, list: &str) -> Vec<String> {
    spec[list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

fn is_set(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// Upstream's `validateEphemeralContainers` for the fields skiff checks.
pub fn validate(spec: &Value, errors: &mut Vec<FieldError>) {
    let Some(list) = spec["ephemeralContainers"].as_array() else {
        return;
    };
    let others: Vec<String> = names(spec, "containers")
        .into_iter()
        .chain(names(spec, "initContainers"))
        .collect();
    let mut all = others.clone();
    for (i, c) in list.iter().enumerate() {
        let path = format!("spec.ephemeralContainers[{i}]");
        let name = c["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            errors.push(FieldError::required(format!("{path}.name"), ""));
        } else if !is_dns1123_label(name) {
            errors.push(FieldError::invalid(
                format!("{path}.name"),
                &json!(name),
                crate::names::DNS1123_LABEL_MSG,
            ));
        }
        if c["image"].as_str().unwrap_or_default().is_empty() {
            errors.push(FieldError::required(format!("{path}.image"), ""));
        }
        if !name.is_empty() {
            if all.iter().any(|n| n == name) {
                errors.push(FieldError::duplicate(format!("{path}.name"), &json!(name)));
            } else {
                all.push(name.to_string());
            }
        }
        let target = c["targetContainerName"].as_str().unwrap_or_default();
        if !target.is_empty() && !others.iter().any(|n| n == target) {
            errors.push(FieldError {
                field: format!("{path}.targetContainerName"),
                reason: "FieldValueNotFound",
                message: format!("Not found: {:?}", target),
            });
        }
        for field in FORBIDDEN {
            if is_set(c.get(*field)) {
                errors.push(FieldError::forbidden(
                    format!("{path}.{field}"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        for (j, mount) in c["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            for field in ["subPath", "subPathExpr"] {
                if is_set(mount.get(field)) {
                    errors.push(FieldError::forbidden(
                        format!("{path}.volumeMounts[{j}].{field}"),
                        "cannot be set for an Ephemeral Container",
                    ));
                }
            }
        }
    }
}

/// Upstream's `ValidatePodEphemeralContainersUpdate`: every existing ephemeral container still
/// there, unchanged.
pub fn validate_update(old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
    if old["metadata"]["annotations"]
        .get("kubernetes.io/config.mirror")
        .is_some()
    {
        errors.clear();
        errors.push(FieldError::forbidden(
            "",
            "static pods do not support ephemeral containers",
        ));
        return;
    }
    // The new list as a whole is checked by the pod's own validation (`validate`).
    let current: Vec<&Value> = new["spec"]["ephemeralContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    for before in old["spec"]["ephemeralContainers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = before["name"].as_str().unwrap_or_default();
        match current.iter().find(|c| c["name"] == name) {
            None => errors.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                format!("existing ephemeral containers {name:?} may not be removed\n"),
            )),
            Some(after) if *after != before => errors.push(FieldError::forbidden(
                "spec.ephemeralContainers",
                format!(
                    "existing ephemeral containers {name:?} may not be changed\n{}",
                    diff(before, after)
                ),
            )),
            Some(_) => {}
        }
    }
}

/// A short account of what changed, in the spirit of upstream's `diff.Diff`: `-` the old
/// fields, `+` the new ones that differ.
fn diff(old: &Value, new: &Value) -> String {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return String::new();
    };
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = String::new();
    for k in keys {
        if o.get(k) != n.get(k) {
            if let Some(v) = o.get(k) {
                out.push_str(&format!("-\t{k}: {v}\n"));
            }
            if let Some(v) = n.get(k) {
                out.push_str(&format!("+\t{k}: {v}\n"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ephemeral: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "app", "image": "nginx"}],
            "ephemeralContainers": ephemeral}})
    }

    #[test]
    fn only_additions() {
        let old = pod(json!([{"name": "debug", "image": "busybox"}]));
        let mut errors = Vec::new();
        let added = pod(json!([{"name": "debug", "image": "busybox"},
            {"name": "debug2", "image": "busybox", "targetContainerName": "app"}]));
        validate(&added["spec"], &mut errors);
        validate_update(&old, &added, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let changed = pod(json!([{"name": "debug", "image": "alpine"}]));
        validate_update(&old, &changed, &mut errors);
        assert!(errors[0]
            .message
            .starts_with("Forbidden: existing ephemeral containers \"debug\" may not be changed"));
        let mut errors = Vec::new();
        validate_update(&old, &pod(json!([])), &mut errors);
        assert!(errors[0].message.contains("may not be removed"));
    }

    #[test]
    fn what_a_debugging_container_may_not_have() {
        let mut errors = Vec::new();
        validate(
            &pod(
                json!([{"name": "app", "image": "b", "ports": [{"containerPort": 80}],
                "targetContainerName": "nope"}]),
            )["spec"],
            &mut errors,
        );
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.ephemeralContainers[0].name",
                "spec.ephemeralContainers[0].targetContainerName",
                "spec.ephemeralContainers[0].ports"
            ]
        );
    }
}
