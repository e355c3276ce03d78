//! The scale subresource of a custom resource (upstream's `registry/customresource/etcd.go`,
//! `scaleFromCustomResource`): an `autoscaling/v1` Scale read from and written to the paths the
//! CRD names — `specReplicasPath`, `statusReplicasPath`, `labelSelectorPath` — so that `kubectl
//! scale` and a HorizontalPodAutoscaler work on custom workloads. Writes are validated as
//! upstream's `ValidateScaleSpec`/`ValidateScaleStatus` do.

use serde_json::{json, Value};

use crate::error::FieldError;

#[derive(Debug, Clone)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

fn pointer(path: &str) -> String {
    format!("/{}", path.trim_start_matches('.').replace('.', "/"))
}

/// Go's name for the type of a JSON value as unstructured content holds it.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() || n.is_u64() => "int64",
        Value::Number(_) => "float64",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
        Value::Null => "<nil>",
    }
}

/// Go's `%v` of a value: strings without quotes.
fn go_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl ScalePaths {
    pub fn from_json(v: &Value) -> Option<ScalePaths> {
        Some(ScalePaths {
            spec_replicas: v.get("specReplicasPath")?.as_str()?.to_string(),
            status_replicas: v.get("statusReplicasPath")?.as_str()?.to_string(),
            label_selector: v
                .get("labelSelectorPath")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
                .map(str::to_string),
        })
    }

    /// The object's Scale.
    pub fn scale_of(&self, object: &Value) -> Value {
        let m = &object["metadata"];
        let int = |path: &str| {
            object
                .pointer(&pointer(path))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        let selector = self
            .label_selector
            .as_deref()
            .and_then(|p| object.pointer(&pointer(p)))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut metadata = json!({"name": m["name"], "uid": m["uid"], "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]});
        if let Some(ns) = m.get("namespace") {
            metadata["namespace"] = ns.clone();
        }
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": metadata,
            "spec": {"replicas": int(&self.spec_replicas)},
            "status": {"replicas": int(&self.status_replicas), "selector": selector},
        })
    }

    /// Sets the replicas at `specReplicasPath`, making the objects on the way.
    pub fn set_replicas(&self, object: &mut Value, replicas: i64) {
        let parts: Vec<&str> = self
            .spec_replicas
            .trim_start_matches('.')
            .split('.')
            .collect();
        let mut here = object;
        for (i, part) in parts.iter().enumerate() {
            if !here.is_object() {
                *here = json!({});
            }
            let map = here.as_object_mut().expect("made an object above");
            if i == parts.len() - 1 {
                map.insert(part.to_string(), json!(replicas));
                return;
            }
            here = map.entry(part.to_string()).or_insert_with(|| json!({}));
        }
    }

    fn check_replicas(path: &str, object: &Value, errors: &mut Vec<FieldError>) {
        let Some(v) = object.pointer(&pointer(path)) else {
            return;
        };
        match v.as_i64() {
            None => errors.push(FieldError::invalid(
                path,
                &json!(0),
                format!(
                    "{path} accessor error: {} is of the type {}, expected int64",
                    go_value(v),
                    go_type(v)
                ),
            )),
            Some(n) if n < 0 => errors.push(FieldError::invalid(
                path,
                v,
                "should be a non-negative integer",
            )),
            Some(n) if n > i64::from(i32::MAX) => errors.push(FieldError::invalid(
                path,
                v,
                format!("should be less than or equal to {}", i32::MAX),
            )),
            Some(_) => {}
        }
    }

    /// The replicas fields hold non-negative 32-bit integers; the selector is a string.
    pub fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        Self::check_replicas(&self.spec_replicas, object, errors);
        Self::check_replicas(&self.status_replicas, object, errors);
        if let Some(path) = &self.label_selector {
            if let Some(v) = object.pointer(&pointer(path)).filter(|v| !v.is_string()) {
                errors.push(FieldError::invalid(
                    path.as_str(),
                    &json!(""),
                    format!(
                        "{path} accessor error: {} is of the type {}, expected string",
                        go_value(v),
                        go_type(v)
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_reads_and_writes_the_paths() {
        let paths = ScalePaths::from_json(&json!({"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.ready", "labelSelectorPath": ".status.selector"})).unwrap();
        let mut obj = json!({"metadata": {"name": "w", "namespace": "d"}, "status": {"ready": 2, "selector": "app=w"}});
        let scale = paths.scale_of(&obj);
        assert_eq!(scale["spec"]["replicas"], 0);
        assert_eq!(scale["status"], json!({"replicas": 2, "selector": "app=w"}));
        paths.set_replicas(&mut obj, 5);
        assert_eq!(obj["spec"]["size"], 5);
        let mut errors = Vec::new();
        obj["spec"]["size"] = json!(-1);
        paths.validate(&obj, &mut errors);
        assert_eq!(
            errors[0].message,
            "Invalid value: -1: should be a non-negative integer"
        );
    }
}
