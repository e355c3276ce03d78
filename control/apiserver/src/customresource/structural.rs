//! Whether a CRD's `openAPIV3Schema` is structural and well-formed, with upstream's messages
//! (`apiextensions-apiserver/pkg/apiserver/schema/validation.go` and the schema checks of
//! `apis/apiextensions/validation/validation.go`): every node has a type (except int-or-string
//! and preserve-unknown-fields nodes), arrays have items, the root is an object without
//! additionalProperties, `metadata` may only restrict name and generateName, value validations
//! (`allOf`, `anyOf`, `oneOf`, `not`) carry no structure, and the `x-kubernetes-*` extensions fit
//! together. Errors are sorted as upstream sorts them.

use serde_json::Value;

use crate::error::FieldError;

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Item,
    Field,
}

const TYPES: &[&str] = &["array", "boolean", "integer", "number", "object", "string"];

/// The errors of the schema at `path` (e.g. `spec.versions[0].schema.openAPIV3Schema`).
pub fn check(schema: &Value, path: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    node(schema, Level::Root, path, &mut errors);
    errors.sort_by_key(|e| format!("{}: {}", e.field, e.message));
    errors
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn node(s: &Value, level: Level, path: &str, errors: &mut Vec<FieldError>) {
    let Some(map) = s.as_object() else {
        return;
    };
    let kind = str_of(s, "type");
    let int_or_string = flag(s, "x-kubernetes-int-or-string");
    let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
    let embedded = flag(s, "x-kubernetes-embedded-resource");
    if !kind.is_empty() && !TYPES.contains(&kind) {
        errors.push(FieldError::not_supported(
            format!("{path}.type"),
            &Value::from(kind),
            TYPES,
        ));
    }
    if map.contains_key("$ref") {
        errors.push(FieldError::forbidden(
            format!("{path}.$ref"),
            "$ref is not supported",
        ));
    }
    if kind == "array" && !map.contains_key("items") {
        errors.push(FieldError::required(
            format!("{path}.items"),
            "must be specified",
        ));
    }
    if let Some(items) = map.get("items") {
        if items.is_array() {
            errors.push(FieldError::forbidden(
                format!("{path}.items"),
                "items must be a schema object and not an array",
            ));
        } else {
            node(items, Level::Item, &format!("{path}.items"), errors);
        }
    }
    let properties = map.get("properties").and_then(Value::as_object);
    if let Some(props) = properties {
        for (k, v) in props {
            node(v, Level::Field, &format!("{path}.properties[{k}]"), errors);
        }
    }
    if let Some(additional) = map.get("additionalProperties") {
        if level == Level::Root {
            errors.push(FieldError::forbidden(
                format!("{path}.additionalProperties"),
                "must not be used at the root",
            ));
        }
        if properties.is_some_and(|p| !p.is_empty()) && additional != &Value::Bool(false) {
            errors.push(FieldError::forbidden(
                format!("{path}.additionalProperties"),
                "additionalProperties and properties are mutual exclusive",
            ));
        }
        if additional.is_object() {
            node(
                additional,
                Level::Field,
                &format!("{path}.additionalProperties"),
                errors,
            );
        }
        if embedded {
            errors.push(FieldError::forbidden(
                format!("{path}.additionalProperties"),
                "must not be used if x-kubernetes-embedded-resource is set",
            ));
        }
    }
    if map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(false)) {
        errors.push(FieldError::invalid(
            format!("{path}.x-kubernetes-preserve-unknown-fields"),
            &Value::Bool(false),
            "must be true or undefined",
        ));
    }
    if int_or_string {
        if preserve {
            errors.push(FieldError::invalid(
                format!("{path}.x-kubernetes-preserve-unknown-fields"),
                &Value::Bool(true),
                "must be false if x-kubernetes-int-or-string is true",
            ));
        }
        if embedded {
            errors.push(FieldError::invalid(
                format!("{path}.x-kubernetes-embedded-resource"),
                &Value::Bool(true),
                "must be false if x-kubernetes-int-or-string is true",
            ));
        }
    }
    if embedded && kind != "object" {
        if kind.is_empty() {
            errors.push(FieldError::required(
                format!("{path}.type"),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        } else {
            errors.push(FieldError::invalid(
                format!("{path}.type"),
                &Value::from(kind),
                "must be object if x-kubernetes-embedded-resource is true",
            ));
        }
    } else if kind.is_empty() && !int_or_string && !preserve {
        let why = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        errors.push(FieldError::required(format!("{path}.type"), why));
    }
    if level == Level::Root && !kind.is_empty() && kind != "object" {
        errors.push(FieldError::invalid(
            format!("{path}.type"),
            &Value::from(kind),
            "must be object at the root",
        ));
    }
    if level == Level::Root && flag(s, "nullable") {
        errors.push(FieldError::forbidden(
            format!("{path}.nullable"),
            "nullable cannot be true at the root",
        ));
    }
    if embedded && !preserve && properties.is_none_or(|p| p.is_empty()) {
        errors.push(FieldError::required(
            format!("{path}.properties"),
            "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields",
        ));
    }
    let check_metadata = level == Level::Root || embedded;
    if let Some(props) = properties {
        for key in ["kind", "apiVersion"] {
            if let Some(p) = props.get(key).filter(|_| check_metadata) {
                let t = str_of(p, "type");
                if t != "string" {
                    errors.push(FieldError::invalid(
                        format!("{path}.properties[{key}].type"),
                        &Value::from(t),
                        "must be string",
                    ));
                }
            }
        }
        if let Some(metadata) = props.get("metadata") {
            if check_metadata && str_of(metadata, "type") != "object" {
                errors.push(FieldError::invalid(
                    format!("{path}.properties[metadata].type"),
                    &Value::from(str_of(metadata, "type")),
                    "must be object",
                ));
            }
            if level == Level::Root {
                let allowed = metadata.as_object().is_none_or(|m| {
                    m.iter().all(|(k, v)| match k.as_str() {
                        "type" => true,
                        "properties" => v
                            .as_object()
                            .is_none_or(|p| p.keys().all(|n| n == "name" || n == "generateName")),
                        _ => false,
                    })
                });
                if !allowed {
                    errors.push(FieldError::forbidden(
                        format!("{path}.properties[metadata]"),
                        "must not specify anything other than name and generateName, but metadata is implicitly specified",
                    ));
                }
            }
        }
    }
    if flag(s, "uniqueItems") {
        errors.push(FieldError::forbidden(
            format!("{path}.uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    if let Some(pattern) = map.get("pattern").and_then(Value::as_str) {
        if let Err(e) = super::schema::compile_pattern(pattern) {
            errors.push(FieldError::invalid(
                format!("{path}.pattern"),
                &Value::from(pattern),
                format!("must be a valid regular expression, but isn't: {e}"),
            ));
        }
    }
    extensions(s, kind, path, errors);
    super::cel::check_rules(s, path, errors);
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = map.get(combinator).and_then(Value::as_array) {
            let int_or_string_pattern = combinator == "anyOf"
                && list.len() == 2
                && str_of(&list[0], "type") == "integer"
                && str_of(&list[1], "type") == "string";
            for (i, sub) in list.iter().enumerate() {
                value_validation(
                    sub,
                    int_or_string_pattern,
                    &format!("{path}.{combinator}[{i}]"),
                    errors,
                );
            }
        }
    }
    if let Some(not) = map.get("not") {
        value_validation(not, false, &format!("{path}.not"), errors);
    }
}

/// The extensions' rules: list types on arrays, map types on objects, map keys with map lists.
fn extensions(s: &Value, kind: &str, path: &str, errors: &mut Vec<FieldError>) {
    if let Some(map_type) = s.get("x-kubernetes-map-type").and_then(Value::as_str) {
        if kind != "object" {
            errors.push(type_must_be(path, kind, "object", "x-kubernetes-map-type"));
        }
        if !matches!(map_type, "atomic" | "granular") {
            errors.push(FieldError::not_supported(
                format!("{path}.x-kubernetes-map-type"),
                &Value::from(map_type),
                &["atomic", "granular"],
            ));
        }
    }
    let list_type = s.get("x-kubernetes-list-type").and_then(Value::as_str);
    if let Some(list_type) = list_type {
        if kind != "array" {
            errors.push(type_must_be(path, kind, "array", "x-kubernetes-list-type"));
        }
        if !matches!(list_type, "atomic" | "set" | "map") {
            errors.push(FieldError::not_supported(
                format!("{path}.x-kubernetes-list-type"),
                &Value::from(list_type),
                &["atomic", "set", "map"],
            ));
        }
    }
    let keys = s
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or(0);
    if keys > 0 && list_type != Some("map") {
        match list_type {
            None => errors.push(FieldError::required(
                format!("{path}.x-kubernetes-list-type"),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
            Some(t) => errors.push(FieldError::invalid(
                format!("{path}.x-kubernetes-list-type"),
                &Value::from(t),
                "must be map if x-kubernetes-list-map-keys is non-empty",
            )),
        }
    }
    if list_type == Some("map") {
        if keys == 0 {
            errors.push(FieldError::required(
                format!("{path}.x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        match s.get("items") {
            None => errors.push(FieldError::required(
                format!("{path}.items"),
                "must have a schema if x-kubernetes-list-type is map",
            )),
            Some(items) if str_of(items, "type") != "object" => errors.push(FieldError::invalid(
                format!("{path}.items.type"),
                &Value::from(str_of(items, "type")),
                "must be object if parent array's x-kubernetes-list-type is map",
            )),
            Some(_) => {}
        }
    }
}

fn type_must_be(path: &str, kind: &str, want: &str, extension: &str) -> FieldError {
    let why = format!("must be {want} if {extension} is specified");
    if kind.is_empty() {
        FieldError::required(format!("{path}.type"), why)
    } else {
        FieldError::invalid(format!("{path}.type"), &Value::from(kind), why)
    }
}

/// A node under `allOf`/`anyOf`/`oneOf`/`not`: value validations only.
fn value_validation(s: &Value, int_or_string: bool, path: &str, errors: &mut Vec<FieldError>) {
    let Some(map) = s.as_object() else {
        return;
    };
    let forbidden: &[(&str, &str)] = &[
        ("additionalProperties", "must be undefined to be structural"),
        ("default", "must be undefined to be structural"),
        ("description", "must be empty to be structural"),
        ("title", "must be empty to be structural"),
        ("nullable", "must be false to be structural"),
        (
            "x-kubernetes-preserve-unknown-fields",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-embedded-resource",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-int-or-string",
            "must be false to be structural",
        ),
        (
            "x-kubernetes-list-map-keys",
            "must be empty to be structural",
        ),
        (
            "x-kubernetes-list-type",
            "must be undefined to be structural",
        ),
        (
            "x-kubernetes-map-type",
            "must be undefined to be structural",
        ),
        ("x-kubernetes-validations", "must be empty to be structural"),
    ];
    if map.contains_key("type") && !int_or_string {
        errors.push(FieldError::forbidden(
            format!("{path}.type"),
            "must be empty to be structural",
        ));
    }
    for (key, why) in forbidden {
        let set = match map.get(*key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        if set {
            errors.push(FieldError::forbidden(format!("{path}.{key}"), *why));
        }
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            if k == "metadata" {
                errors.push(FieldError::forbidden(
                    format!("{path}.properties[metadata]"),
                    "must not be specified in a nested context",
                ));
            }
            value_validation(v, false, &format!("{path}.properties[{k}]"), errors);
        }
    }
    if let Some(items) = map.get("items") {
        value_validation(items, false, &format!("{path}.items"), errors);
    }
    for combinator in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = map.get(combinator).and_then(Value::as_array) {
            for (i, sub) in list.iter().enumerate() {
                value_validation(sub, false, &format!("{path}.{combinator}[{i}]"), errors);
            }
        }
    }
    if let Some(not) = map.get("not") {
        value_validation(not, false, &format!("{path}.not"), errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(schema: Value) -> Vec<String> {
        check(&schema, "spec.versions[0].schema.openAPIV3Schema")
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn non_structural_schemas_are_named() {
        assert_eq!(
            text(json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "array"}}}}})),
            vec![
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[a].items: Required value: must be specified",
                "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
            ]
        );
        assert_eq!(
            text(json!({"type": "string"})),
            vec!["spec.versions[0].schema.openAPIV3Schema.type: Invalid value: \"string\": must be object at the root"]
        );
        assert_eq!(
            text(json!({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}})),
            vec!["spec.versions[0].schema.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"]
        );
        assert!(text(json!({"type": "object", "properties": {
            "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10}}},
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            "port": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"], "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}
        }})).is_empty());
    }
}
