//! ObjectMeta validation every resource shares (apimachinery's `ValidateObjectMeta`): the name by
//! the resource's rule, label keys and values, annotation keys and their total size.

use serde_json::Value;

use crate::error::FieldError;
use crate::names::{is_qualified_name, is_qualified_name_part, NameRule};

fn check_labels(path: &str, labels: Option<&Value>, errors: &mut Vec<FieldError>) {
    let Some(map) = labels.and_then(Value::as_object) else {
        return;
    };
    for (k, v) in map {
        if !is_qualified_name(k) {
            errors.push(FieldError::invalid(
                path,
                &Value::String(k.clone()),
                crate::names::LABEL_KEY_MSG,
            ));
        }
        let value = v.as_str().unwrap_or_default();
        if !value.is_empty() && !is_qualified_name_part(value) {
            errors.push(FieldError::invalid(path, v, crate::names::LABEL_VALUE_MSG));
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

/// Name (by the resource's rule), labels and annotations.
pub fn validate(rule: NameRule, object: &Value, errors: &mut Vec<FieldError>) {
    let meta = &object["metadata"];
    let name = meta.get("name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        if !(rule.check)(name) {
            errors.push(FieldError::invalid(
                "metadata.name",
                &Value::String(name.into()),
                rule.message,
            ));
        }
    }
    check_labels("metadata.labels", meta.get("labels"), errors);
    check_annotations(meta.get("annotations"), errors);
}
