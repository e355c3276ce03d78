//! Validation of custom objects against their schema, with upstream's messages: kube-openapi's
//! validator (`pkg/validation/validate`, its texts in `pkg/validation/errors/schema.go`) turned
//! into field errors the way `apiextensions-apiserver/pkg/apiserver/validation` does it
//! (`kubeOpenAPIResultToFieldErrors`): a wrong type is
//! `spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"`,
//! a missing required field `spec.cronSpec: Required value`, an enum miss `Unsupported value`, a
//! too long string `Too long: may not be more than 5 bytes`, too many items `Too many: 4: must have
//! at most 3 items`; every other failure is `Invalid value: <value>: <kube-openapi's sentence>`.
//! The `x-kubernetes-list-type` rules (sets and maps have no duplicates) are upstream's
//! `listtype` validation: `Duplicate value`.

use serde_json::Value;

use super::schema::{Additional, Schema};
use crate::error::FieldError;

/// Validates `value` (a whole custom object) against `schema`.
pub fn validate(value: &Value, schema: &Schema) -> Vec<FieldError> {
    let mut errors = Vec::new();
    node(value, schema, "", true, &mut errors);
    errors
}

/// kube-openapi's name for the JSON type of a value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Go's `%v` of a float64: integral values without a fraction.
pub fn go_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e21 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// kube-openapi's sentence subject: the path, "in body".
fn subject(path: &str) -> String {
    format!("{path} in body")
}

fn type_matches(kind: &str, v: &Value) -> bool {
    match kind {
        "" => true,
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "number" => v.is_number(),
        // An integral float (1.0) is an integer to kube-openapi too.
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => true,
    }
}

fn node(value: &Value, schema: &Schema, path: &str, root: bool, errors: &mut Vec<FieldError>) {
    if value.is_null() {
        if !schema.kind.is_empty() && !schema.nullable {
            errors.push(FieldError::type_invalid(
                path,
                &Value::from("null"),
                format!(
                    "{} must be of type {}: \"null\"",
                    subject(path),
                    schema.kind
                ),
            ));
        }
        return;
    }
    if schema.int_or_string {
        if !(value.is_string() || type_matches("integer", value)) {
            errors.push(FieldError::type_invalid(
                path,
                &Value::from(type_name(value)),
                format!(
                    "{} must be of type integer,string: {:?}",
                    subject(path),
                    type_name(value)
                ),
            ));
            // The node's own `anyOf` (integer or string) fails too, and says so.
            values(value, schema, path, errors);
            return;
        }
    } else if !type_matches(&schema.kind, value) {
        errors.push(FieldError::type_invalid(
            path,
            &Value::from(type_name(value)),
            format!(
                "{} must be of type {}: {:?}",
                subject(path),
                schema.kind,
                type_name(value)
            ),
        ));
        return;
    }
    values(value, schema, path, errors);
    match value {
        Value::Object(map) => {
            for key in &schema.required {
                if !map.contains_key(key) {
                    errors.push(FieldError::required(child(path, key), ""));
                }
            }
            let resource = root || schema.embedded;
            for (key, v) in map {
                if resource && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    if schema.embedded && !root {
                        embedded_meta(key, v, &child(path, key), errors);
                    }
                    continue;
                }
                let sub = match schema.properties.get(key) {
                    Some(p) => Some(p),
                    None => match &schema.additional {
                        Additional::Schema(s) => Some(s.as_ref()),
                        _ => None,
                    },
                };
                if let Some(sub) = sub {
                    node(v, sub, &child(path, key), false, errors);
                }
            }
            if schema.embedded && !root {
                for key in ["apiVersion", "kind"] {
                    let empty = map
                        .get(key)
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty);
                    if empty {
                        errors.push(FieldError::required(child(path, key), "must not be empty"));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for (i, item) in items.iter().enumerate() {
                    node(item, item_schema, &format!("{path}[{i}]"), false, errors);
                }
            }
            list_type(items, schema, path, errors);
        }
        _ => {}
    }
}

/// An embedded resource's `apiVersion` and `kind` are strings, its metadata an object.
fn embedded_meta(key: &str, v: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let ok = match key {
        "metadata" => v.is_object(),
        _ => v.is_string(),
    };
    if !ok {
        let want = if key == "metadata" {
            "object"
        } else {
            "string"
        };
        errors.push(FieldError::type_invalid(
            path,
            &Value::from(type_name(v)),
            format!(
                "{} must be of type {want}: {:?}",
                subject(path),
                type_name(v)
            ),
        ));
    }
}

/// The value validations of one node (its type already matched).
fn values(value: &Value, schema: &Schema, path: &str, errors: &mut Vec<FieldError>) {
    let invalid = |errors: &mut Vec<FieldError>, sentence: String| {
        errors.push(FieldError::invalid(path, value, sentence));
    };
    if let Some(allowed) = &schema.enumeration {
        if !allowed.iter().any(|a| a == value) {
            let list: Vec<String> = allowed
                .iter()
                .map(|a| match a {
                    Value::String(s) => format!("{s:?}"),
                    other => format!("{:?}", other.to_string()),
                })
                .collect();
            errors.push(FieldError::not_supported_values(path, value, &list));
        }
    }
    match value {
        Value::String(s) => {
            let chars = s.chars().count() as u64;
            if let Some(max) = schema.max_length {
                if chars > max {
                    errors.push(FieldError::too_long(path, max));
                }
            }
            if let Some(min) = schema.min_length {
                if chars < min {
                    invalid(
                        errors,
                        format!("{} should be at least {min} chars long", subject(path)),
                    );
                }
            }
            if let Some((text, pattern)) = &schema.pattern {
                if !pattern.is_match(s) {
                    invalid(errors, format!("{} should match '{text}'", subject(path)));
                }
            }
            if !schema.format.is_empty() && !super::formats::is_valid(&schema.format, s) {
                errors.push(FieldError::type_invalid(
                    path,
                    value,
                    format!("{} must be of type {}: {s:?}", subject(path), schema.format),
                ));
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(max) = schema.maximum {
                if schema.exclusive_maximum && x >= max {
                    invalid(
                        errors,
                        format!("{} should be less than {}", subject(path), go_number(max)),
                    );
                } else if x > max {
                    invalid(
                        errors,
                        format!(
                            "{} should be less than or equal to {}",
                            subject(path),
                            go_number(max)
                        ),
                    );
                }
            }
            if let Some(min) = schema.minimum {
                if schema.exclusive_minimum && x <= min {
                    invalid(
                        errors,
                        format!(
                            "{} should be greater than {}",
                            subject(path),
                            go_number(min)
                        ),
                    );
                } else if x < min {
                    invalid(
                        errors,
                        format!(
                            "{} should be greater than or equal to {}",
                            subject(path),
                            go_number(min)
                        ),
                    );
                }
            }
            if let Some(factor) = schema.multiple_of.filter(|f| *f > 0.0) {
                let q = x / factor;
                if (q - q.round()).abs() > 1e-9 {
                    invalid(
                        errors,
                        format!(
                            "{} should be a multiple of {}",
                            subject(path),
                            go_number(factor)
                        ),
                    );
                }
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(max) = schema.max_items {
                if n > max {
                    errors.push(FieldError::too_many(path, n, max));
                }
            }
            if let Some(min) = schema.min_items {
                if n < min {
                    invalid(
                        errors,
                        format!("{} should have at least {min} items", subject(path)),
                    );
                }
            }
            if schema.unique_items {
                let mut seen: Vec<&Value> = Vec::new();
                if items.iter().any(|i| {
                    let dup = seen.contains(&i);
                    seen.push(i);
                    dup
                }) {
                    invalid(
                        errors,
                        format!("{} shouldn't contain duplicates", subject(path)),
                    );
                }
            }
        }
        Value::Object(map) => {
            let n = map.len() as u64;
            if let Some(max) = schema.max_properties {
                if n > max {
                    errors.push(FieldError::too_many(path, n, max));
                }
            }
            if let Some(min) = schema.min_properties {
                if n < min {
                    invalid(
                        errors,
                        format!("{} should have at least {min} properties", subject(path)),
                    );
                }
            }
        }
        _ => {}
    }
    // The combinators: value validations only (a structural schema keeps its structure out of
    // them), checked against the same value.
    for s in &schema.all_of {
        node_values(value, s, path, errors);
    }
    if !schema.any_of.is_empty() && !schema.any_of.iter().any(|s| passes(value, s, path)) {
        // kube-openapi's composite error (no field of its own), then why the first
        // alternative failed.
        errors.push(composite(format!(
            "{path:?} must validate at least one schema (anyOf)"
        )));
        node_values(value, &schema.any_of[0], path, errors);
    }
    if !schema.one_of.is_empty() {
        let passing = schema
            .one_of
            .iter()
            .filter(|s| passes(value, s, path))
            .count();
        if passing != 1 {
            let found = if passing == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {passing} valid alternatives")
            };
            errors.push(composite(format!(
                "{path:?} must validate one and only one schema (oneOf). {found}"
            )));
        }
    }
    if let Some(not) = &schema.not {
        if passes(value, not, path) {
            errors.push(composite(format!(
                "{path:?} must not validate the schema (not)"
            )));
        }
    }
}

/// A composite error of kube-openapi (anyOf, oneOf, not): it names no field, and upstream's
/// conversion shows it as `<nil>: Invalid value: "": <sentence>`.
fn composite(sentence: String) -> FieldError {
    FieldError {
        field: "<nil>".into(),
        reason: "FieldValueInvalid",
        message: format!("Invalid value: \"\": {sentence}"),
    }
}

/// A combinator's schema against a value: its type (when it names one), value validations and
/// the same below its properties and items.
fn node_values(value: &Value, schema: &Schema, path: &str, errors: &mut Vec<FieldError>) {
    if value.is_null() {
        return;
    }
    if !schema.kind.is_empty() && !type_matches(&schema.kind, value) {
        errors.push(FieldError::type_invalid(
            path,
            &Value::from(type_name(value)),
            format!(
                "{} must be of type {}: {:?}",
                subject(path),
                schema.kind,
                type_name(value)
            ),
        ));
        return;
    }
    values(value, schema, path, errors);
    match value {
        Value::Object(map) => {
            for key in &schema.required {
                if !map.contains_key(key) {
                    errors.push(FieldError::required(child(path, key), ""));
                }
            }
            for (key, sub) in &schema.properties {
                if let Some(v) = map.get(key) {
                    node_values(v, sub, &child(path, key), errors);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for (i, item) in items.iter().enumerate() {
                    node_values(item, item_schema, &format!("{path}[{i}]"), errors);
                }
            }
        }
        _ => {}
    }
}

fn passes(value: &Value, schema: &Schema, path: &str) -> bool {
    let mut errors = Vec::new();
    node_values(value, schema, path, &mut errors);
    errors.is_empty()
}

/// `x-kubernetes-list-type: set` items are unique; `map` items are unique by their
/// `x-kubernetes-list-map-keys`.
fn list_type(items: &[Value], schema: &Schema, path: &str, errors: &mut Vec<FieldError>) {
    match schema.list_type.as_deref() {
        Some("set") => {
            for (i, item) in items.iter().enumerate() {
                if items[..i].contains(item) {
                    errors.push(FieldError::duplicate(format!("{path}[{i}]"), item));
                }
            }
        }
        Some("map") => {
            let key_of = |item: &Value| -> Vec<Value> {
                schema
                    .list_map_keys
                    .iter()
                    .map(|k| item.get(k).cloned().unwrap_or(Value::Null))
                    .collect()
            };
            let keys: Vec<Vec<Value>> = items.iter().map(key_of).collect();
            for i in 0..keys.len() {
                if keys[..i].contains(&keys[i]) {
                    let shown: serde_json::Map<String, Value> = schema
                        .list_map_keys
                        .iter()
                        .cloned()
                        .zip(keys[i].iter().cloned())
                        .collect();
                    errors.push(FieldError::duplicate(
                        format!("{path}[{i}]"),
                        &Value::Object(shown),
                    ));
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::from_json(&json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "required": ["cronSpec"], "properties": {
                "cronSpec": {"type": "string", "pattern": "^(\\d+|\\*)(/\\d+)?(\\s+(\\d+|\\*)(/\\d+)?){4}$"},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
                "image": {"type": "string", "maxLength": 5},
                "mode": {"type": "string", "enum": ["fast", "slow"]},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                "port": {"x-kubernetes-int-or-string": true},
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "when": {"type": "string", "format": "date-time"}
            }}}
        }))
    }

    fn messages(v: Value) -> Vec<String> {
        validate(&v, &schema())
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn upstream_messages() {
        assert_eq!(
            messages(json!({"spec": {"cronSpec": "* * * * *", "replicas": "three"}})),
            vec![
                r#"spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string""#
            ]
        );
        assert_eq!(
            messages(json!({"spec": {"replicas": 11}})),
            vec![
                "spec.cronSpec: Required value",
                "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"
            ]
        );
        assert_eq!(
            messages(
                json!({"spec": {"cronSpec": "x", "image": "nginx:1.25", "mode": "medium", "tags": ["a", "b", "a"]}})
            ),
            vec![
                r#"spec.cronSpec: Invalid value: "x": spec.cronSpec in body should match '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'"#,
                "spec.image: Too long: may not be more than 5 bytes",
                r#"spec.mode: Unsupported value: "medium": supported values: "fast", "slow""#,
                "spec.tags: Too many: 3: must have at most 2 items",
                r#"spec.tags[2]: Duplicate value: "a""#,
            ]
        );
        assert_eq!(
            messages(
                json!({"spec": {"cronSpec": "* * * * *", "port": true, "ports": [{"name": "a"}, {"name": "a"}], "when": "yesterday"}})
            ),
            vec![
                r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#,
                r#"spec.ports[1]: Duplicate value: {"name":"a"}"#,
                r#"spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday""#,
            ]
        );
        assert!(messages(
            json!({"spec": {"cronSpec": "*/5 * * * *", "port": "http", "replicas": 3}})
        )
        .is_empty());
        assert!(messages(
            json!({"spec": {"cronSpec": "*/5 * * * *", "port": 80, "replicas": 3.0}})
        )
        .is_empty());
    }
}
