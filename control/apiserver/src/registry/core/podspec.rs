//! The pod spec's defaults and validation (`pkg/apis/core/v1/defaults.go`,
//! `pkg/apis/core/validation`), shared by pods, pod templates and every workload that embeds a
//! pod template.

use serde_json::{json, Map, Value};

use crate::error::FieldError;
use crate::names::{is_dns1123_label, DNS1123_LABEL_MSG};
use crate::registry::fields::{check_enum, child, default, each, str_at};

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

fn default_probe(probe: Option<&mut Value>) {
    if let Some(p) = probe.and_then(obj) {
        default(p, "timeoutSeconds", json!(1));
        default(p, "periodSeconds", json!(10));
        default(p, "successThreshold", json!(1));
        default(p, "failureThreshold", json!(3));
        if let Some(h) = p.get_mut("httpGet").and_then(obj) {
            default(h, "path", json!("/"));
            default(h, "scheme", json!("HTTP"));
        }
    }
}

fn default_container(c: &mut Map<String, Value>) {
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    default(c, "resources", json!({}));
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    // `:latest` or no tag (and no digest) pulls every time, as upstream decides.
    let last = image.rsplit('/').next().unwrap_or_default();
    let always = !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"));
    default(
        c,
        "imagePullPolicy",
        json!(if always { "Always" } else { "IfNotPresent" }),
    );
    for p in each(c, "ports") {
        default(p, "protocol", json!("TCP"));
    }
    for env in each(c, "env") {
        if let Some(fr) = env
            .get_mut("valueFrom")
            .and_then(obj)
            .and_then(|v| v.get_mut("fieldRef"))
            .and_then(obj)
        {
            default(fr, "apiVersion", json!("v1"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        default_probe(c.get_mut(probe));
    }
}

pub fn default_pod_spec(spec: &mut Map<String, Value>) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in each(spec, list) {
            default_container(c);
        }
    }
    for v in each(spec, "volumes") {
        for source in ["configMap", "secret"] {
            if let Some(s) = v.get_mut(source).and_then(obj) {
                default(s, "defaultMode", json!(420));
            }
        }
    }
}

pub fn default_template(spec: &mut Map<String, Value>) {
    let template = child(spec, "template");
    default(template, "metadata", json!({}));
    default_pod_spec(child(template, "spec"));
}

fn validate_containers(
    path: &str,
    list: Option<&Value>,
    required: bool,
    errors: &mut Vec<FieldError>,
) {
    let items = list
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if items.is_empty() && required {
        errors.push(FieldError::required(path, ""));
    }
    let mut seen = Vec::new();
    for (i, c) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let name = str_at(c, "/name");
        if name.is_empty() {
            errors.push(FieldError::required(format!("{at}.name"), ""));
        } else if !is_dns1123_label(name) {
            errors.push(FieldError::invalid(
                format!("{at}.name"),
                &c["name"],
                DNS1123_LABEL_MSG,
            ));
        } else if seen.contains(&name) {
            errors.push(FieldError::duplicate(format!("{at}.name"), &c["name"]));
        }
        seen.push(name);
        if str_at(c, "/image").trim().is_empty() {
            errors.push(FieldError::required(format!("{at}.image"), ""));
        }
        check_enum(
            &format!("{at}.imagePullPolicy"),
            c.get("imagePullPolicy"),
            &["Always", "IfNotPresent", "Never"],
            errors,
        );
        for (j, p) in c
            .get("ports")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let port = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
            if !(1..=65535).contains(&port) {
                errors.push(FieldError::invalid(
                    format!("{at}.ports[{j}].containerPort"),
                    &p["containerPort"],
                    "must be between 1 and 65535, inclusive",
                ));
            }
            check_enum(
                &format!("{at}.ports[{j}].protocol"),
                p.get("protocol"),
                &["TCP", "UDP", "SCTP"],
                errors,
            );
        }
    }
}

pub fn validate_pod_spec(path: &str, spec: &Value, errors: &mut Vec<FieldError>) {
    if !spec.is_object() {
        errors.push(FieldError::required(path, ""));
        return;
    }
    validate_containers(
        &format!("{path}.containers"),
        spec.get("containers"),
        true,
        errors,
    );
    validate_containers(
        &format!("{path}.initContainers"),
        spec.get("initContainers"),
        false,
        errors,
    );
    check_enum(
        &format!("{path}.restartPolicy"),
        spec.get("restartPolicy"),
        &["Always", "OnFailure", "Never"],
        errors,
    );
    check_enum(
        &format!("{path}.dnsPolicy"),
        spec.get("dnsPolicy"),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        errors,
    );
    let mut volumes = Vec::new();
    for (i, v) in spec
        .get("volumes")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let name = str_at(v, "/name");
        if !is_dns1123_label(name) {
            errors.push(FieldError::invalid(
                format!("{path}.volumes[{i}].name"),
                &v["name"],
                DNS1123_LABEL_MSG,
            ));
        } else if volumes.contains(&name) {
            errors.push(FieldError::duplicate(
                format!("{path}.volumes[{i}].name"),
                &v["name"],
            ));
        }
        volumes.push(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_tag() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.26", "IfNotPresent"),
            ("localhost:5000/busybox", "Always"),
            ("r/x@sha256:ab", "IfNotPresent"),
        ] {
            let mut c = Map::new();
            c.insert("image".into(), json!(image));
            default_container(&mut c);
            assert_eq!(c["imagePullPolicy"], want, "{image}");
        }
    }
}
