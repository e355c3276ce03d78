//! JSON field helpers the strategies share: defaulting a field, reaching or creating a nested
//! object, and the small validation rules (enums, immutable fields) upstream's validation uses
//! everywhere.

use serde_json::{Map, Value};

use crate::error::FieldError;

/// Sets `key` when missing or null.
pub fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_string(), value);
    }
}

/// The object at `key`, created empty when missing.
pub fn child<'a>(map: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    if !map.get(key).is_some_and(Value::is_object) {
        map.insert(key.to_string(), Value::Object(Map::new()));
    }
    map.get_mut(key)
        .and_then(Value::as_object_mut)
        .expect("just inserted an object")
}

/// The object's `spec`, created empty when missing; None when the object is not a JSON object.
pub fn spec_of(object: &mut Value) -> Option<&mut Map<String, Value>> {
    object.as_object_mut().map(|root| child(root, "spec"))
}

/// The objects in the array at `key`.
pub fn each<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
) -> impl Iterator<Item = &'a mut Map<String, Value>> {
    map.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// The strings of the list `v[key]` (a non-string item reads as ""; no list, none).
pub fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The string at a JSON pointer, "" when missing.
pub fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A set field must hold one of `allowed`.
pub fn check_enum(
    path: &str,
    value: Option<&Value>,
    allowed: &[&str],
    errors: &mut Vec<FieldError>,
) {
    if let Some(v) = value {
        if !v.as_str().is_some_and(|s| allowed.contains(&s)) {
            errors.push(FieldError::not_supported(path, v, allowed));
        }
    }
}

/// A field that may not change once set (null and missing are the same).
pub fn immutable(
    path: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    errors: &mut Vec<FieldError>,
) {
    let norm = |v: Option<&Value>| v.filter(|v| !v.is_null()).cloned();
    if norm(old) != norm(new) {
        errors.push(FieldError::invalid(
            path,
            new.unwrap_or(&Value::Null),
            "field is immutable",
        ));
    }
}
