//! Validation as upstream's `pkg/apis/*/validation` does it for the fields clients hit first:
//! names, labels, required fields, enums, immutable fields and selector/template agreement. Each
//! failure is a field error; the caller returns them together as a 422 Invalid.

use serde_json::Value;

use crate::error::FieldError;
use crate::resources::ResourceInfo;
use crate::selectors::LabelSelector;

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// The name part of a qualified name or a label value: `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, ≤ 63.
pub fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_qualified_name(s: &str) -> bool {
    match s.rsplit_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(s),
    }
}

/// Which rule a resource's names follow (upstream's per-resource `ValidateName` funcs).
fn name_rule(info: &ResourceInfo) -> (fn(&str) -> bool, &'static str) {
    match (info.group, info.resource) {
        ("", "namespaces") => (is_dns1123_label, DNS1123_LABEL_MSG),
        ("", "services") => (is_dns1035_label, DNS1035_LABEL_MSG),
        ("rbac.authorization.k8s.io", _) => (
            |s: &str| !s.is_empty() && !s.contains('/') && s != "." && s != "..",
            "may not contain '/'",
        ),
        _ => (is_dns1123_subdomain, DNS1123_SUBDOMAIN_MSG),
    }
}

fn check_labels(path: &str, labels: Option<&Value>, errors: &mut Vec<FieldError>) {
    let Some(map) = labels.and_then(Value::as_object) else {
        return;
    };
    for (k, v) in map {
        if !is_qualified_name(k) {
            errors.push(FieldError::invalid(path, &Value::String(k.clone()), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"));
        }
        let value = v.as_str().unwrap_or_default();
        if !value.is_empty() && !is_qualified_name_part(value) {
            errors.push(FieldError::invalid(path, v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"));
        }
    }
}

fn check_annotations(annotations: Option<&Value>, errors: &mut Vec<FieldError>) {
    let Some(map) = annotations.and_then(Value::as_object) else {
        return;
    };
    let mut total = 0;
    for (k, v) in map {
        if !is_qualified_name(&k.to_lowercase()) {
            errors.push(FieldError::invalid("metadata.annotations", &Value::String(k.clone()), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
        }
        total += k.len() + v.as_str().map(str::len).unwrap_or(0);
    }
    if total > 256 * 1024 {
        errors.push(FieldError {
            field: "metadata.annotations".into(),
            reason: "FieldValueTooLong",
            message: "Too long: must have at most 262144 bytes".into(),
        });
    }
}

pub fn validate_meta(info: &ResourceInfo, object: &Value, errors: &mut Vec<FieldError>) {
    let meta = &object["metadata"];
    let name = meta.get("name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        let (rule, msg) = name_rule(info);
        if !rule(name) {
            errors.push(FieldError::invalid(
                "metadata.name",
                &Value::String(name.into()),
                msg,
            ));
        }
    }
    check_labels("metadata.labels", meta.get("labels"), errors);
    check_annotations(meta.get("annotations"), errors);
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn check_enum(path: &str, value: Option<&Value>, allowed: &[&str], errors: &mut Vec<FieldError>) {
    if let Some(v) = value {
        if !v.as_str().is_some_and(|s| allowed.contains(&s)) {
            errors.push(FieldError::not_supported(path, v, allowed));
        }
    }
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

fn validate_selector_template(
    path: &str,
    spec: &Value,
    required: bool,
    errors: &mut Vec<FieldError>,
) {
    let Some(selector) = spec.get("selector").filter(|s| !s.is_null()) else {
        if required {
            errors.push(FieldError::required(format!("{path}.selector"), ""));
        }
        return;
    };
    match LabelSelector::from_object(selector) {
        Err(e) => errors.push(FieldError::invalid(format!("{path}.selector"), selector, e)),
        Ok(sel) if sel.is_empty() => errors.push(FieldError::invalid(
            format!("{path}.selector"),
            selector,
            "empty selector is invalid for deployment",
        )),
        Ok(sel) => {
            let labels = spec.pointer("/template/metadata/labels");
            if !sel.matches_labels(labels.and_then(Value::as_object)) {
                errors.push(FieldError::invalid(
                    format!("{path}.template.metadata.labels"),
                    labels.unwrap_or(&Value::Null),
                    "`selector` does not match template `labels`",
                ));
            }
        }
    }
}

fn validate_replicas(path: &str, spec: &Value, errors: &mut Vec<FieldError>) {
    if let Some(r) = spec.get("replicas") {
        if r.as_i64().is_some_and(|n| n < 0) {
            errors.push(FieldError::invalid(
                format!("{path}.replicas"),
                r,
                "must be greater than or equal to 0",
            ));
        }
    }
}

fn validate_service(spec: &Value, errors: &mut Vec<FieldError>) {
    let kind = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    check_enum(
        "spec.type",
        spec.get("type"),
        &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"],
        errors,
    );
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if ports.is_empty() && kind != "ExternalName" && str_at(spec, "/clusterIP") != "None" {
        errors.push(FieldError::required("spec.ports", ""));
    }
    if kind == "ExternalName" && str_at(spec, "/externalName").is_empty() {
        errors.push(FieldError::required("spec.externalName", ""));
    }
    let mut names = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&port) {
            errors.push(FieldError::invalid(
                format!("spec.ports[{i}].port"),
                p.get("port").unwrap_or(&Value::Null),
                "must be between 1 and 65535, inclusive",
            ));
        }
        let name = str_at(p, "/name");
        if ports.len() > 1 && name.is_empty() {
            errors.push(FieldError::required(format!("spec.ports[{i}].name"), ""));
        } else if !name.is_empty() && names.contains(&name) {
            errors.push(FieldError::duplicate(
                format!("spec.ports[{i}].name"),
                &p["name"],
            ));
        }
        names.push(name);
        check_enum(
            &format!("spec.ports[{i}].protocol"),
            p.get("protocol"),
            &["TCP", "UDP", "SCTP"],
            errors,
        );
        if let Some(np) = p.get("nodePort").and_then(Value::as_i64) {
            if kind == "ClusterIP" && np != 0 {
                errors.push(FieldError::forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
}

/// Kind-specific rules for a new or updated object.
pub fn validate(info: &ResourceInfo, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_meta(info, object, &mut errors);
    let spec = &object["spec"];
    match (info.group, info.resource) {
        ("", "pods") => validate_pod_spec("spec", spec, &mut errors),
        ("", "podtemplates") => {
            validate_pod_spec("template.spec", &object["template"]["spec"], &mut errors)
        }
        ("", "services") => validate_service(spec, &mut errors),
        ("apps", "deployments")
        | ("apps", "replicasets")
        | ("apps", "statefulsets")
        | ("apps", "daemonsets") => {
            validate_replicas("spec", spec, &mut errors);
            validate_selector_template("spec", spec, true, &mut errors);
            validate_pod_spec("spec.template.spec", &spec["template"]["spec"], &mut errors);
            if info.resource == "deployments" {
                check_enum(
                    "spec.strategy.type",
                    spec.pointer("/strategy/type"),
                    &["Recreate", "RollingUpdate"],
                    &mut errors,
                );
            }
        }
        ("batch", "jobs") => {
            validate_pod_spec("spec.template.spec", &spec["template"]["spec"], &mut errors);
            check_enum(
                "spec.template.spec.restartPolicy",
                spec.pointer("/template/spec/restartPolicy"),
                &["OnFailure", "Never"],
                &mut errors,
            );
        }
        ("batch", "cronjobs") => {
            if str_at(spec, "/schedule").trim().is_empty() {
                errors.push(FieldError::required("spec.schedule", ""));
            }
            let tmpl = &spec["jobTemplate"]["spec"]["template"]["spec"];
            validate_pod_spec("spec.jobTemplate.spec.template.spec", tmpl, &mut errors);
        }
        ("", "configmaps") | ("", "secrets") => {
            for field in ["data", "binaryData", "stringData"] {
                if let Some(map) = object.get(field).and_then(Value::as_object) {
                    for k in map.keys() {
                        let ok = !k.is_empty()
                            && k.len() <= 253
                            && k.bytes().all(|b| {
                                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
                            });
                        if !ok {
                            errors.push(FieldError::invalid(format!("{field}[{k}]"), &Value::String(k.clone()), "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
                        }
                    }
                }
            }
        }
        _ => {}
    }
    errors
}

fn immutable(path: &str, old: Option<&Value>, new: Option<&Value>, errors: &mut Vec<FieldError>) {
    let norm = |v: Option<&Value>| v.filter(|v| !v.is_null()).cloned();
    if norm(old) != norm(new) {
        errors.push(FieldError::invalid(
            path,
            new.unwrap_or(&Value::Null),
            "field is immutable",
        ));
    }
}

/// Rules that compare the new object with the stored one.
pub fn validate_update(info: &ResourceInfo, old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match (info.group, info.resource) {
        ("", "pods") => {
            // Only images, activeDeadlineSeconds, tolerations (additions) and the scheduling gates
            // may change on a pod (upstream ValidatePodUpdate).
            let strip = |spec: &Value| {
                let mut s = spec.clone();
                for list in ["containers", "initContainers"] {
                    if let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) {
                        for c in cs {
                            if let Some(o) = c.as_object_mut() {
                                o.remove("image");
                            }
                        }
                    }
                }
                if let Some(o) = s.as_object_mut() {
                    o.remove("activeDeadlineSeconds");
                    o.remove("tolerations");
                    o.remove("schedulingGates");
                    // nodeName is set once through pods/binding.
                    if old["spec"].get("nodeName").is_none() {
                        o.remove("nodeName");
                    }
                }
                s
            };
            if strip(&old["spec"]) != strip(&new["spec"]) {
                errors.push(FieldError::forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"));
            }
        }
        ("apps", "deployments")
        | ("apps", "replicasets")
        | ("apps", "daemonsets")
        | ("apps", "statefulsets") => {
            immutable(
                "spec.selector",
                old.pointer("/spec/selector"),
                new.pointer("/spec/selector"),
                &mut errors,
            );
        }
        ("batch", "jobs") => {
            immutable(
                "spec.selector",
                old.pointer("/spec/selector"),
                new.pointer("/spec/selector"),
                &mut errors,
            );
            let tmpl = |v: &Value| {
                let mut t = v.pointer("/spec/template").cloned().unwrap_or(Value::Null);
                // Labels/annotations of the template may change while suspended; keep it simple:
                // compare specs only.
                if let Some(o) = t.as_object_mut() {
                    o.remove("metadata");
                }
                t
            };
            if tmpl(old) != tmpl(new) {
                errors.push(FieldError::invalid(
                    "spec.template",
                    new.pointer("/spec/template").unwrap_or(&Value::Null),
                    "field is immutable",
                ));
            }
        }
        ("", "services") => {
            let old_ip = old.pointer("/spec/clusterIP");
            let new_ip = new.pointer("/spec/clusterIP");
            if new_ip
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
            {
                immutable("spec.clusterIP", old_ip, new_ip, &mut errors);
            }
        }
        ("", "secrets") | ("", "configmaps")
            if old.get("immutable").and_then(Value::as_bool) == Some(true) =>
        {
            for field in ["data", "binaryData"] {
                if old.get(field) != new.get(field) {
                    errors.push(FieldError::forbidden(
                        field,
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
        }
        _ => {}
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names() {
        assert!(is_dns1123_label("blue"));
        assert!(!is_dns1123_label("Blue"));
        assert!(!is_dns1123_label("-a"));
        assert!(is_dns1123_subdomain("a.b-c.d"));
        assert!(!is_dns1123_subdomain("a..b"));
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(!is_qualified_name("/x"));
    }

    #[test]
    fn deployment_selector_must_match() {
        let info = crate::resources::find("apps", "v1", "deployments").unwrap();
        let d = json!({"metadata": {"name": "web"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        let errs = validate(info, &d);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.template.metadata.labels");
    }

    #[test]
    fn pod_requires_containers_and_images() {
        let errs = validate(
            crate::resources::pods(),
            &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "BAD"}]}}),
        );
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["spec.containers[0].name", "spec.containers[0].image"]
        );
    }
}
