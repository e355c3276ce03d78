//! ConfigMaps (`pkg/registry/core/configmap`): data keys must be valid config keys, and an
//! `immutable` map keeps its data; secrets share both rules. The printer.

use crate::error::FieldError;
use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct ConfigMaps;

pub static STRATEGY: ConfigMaps = ConfigMaps;

impl Strategy for ConfigMaps {
    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_keys(object, errors);
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        validate_immutable_data(old, new, errors);
    }

    fn printer(&self) -> &'static Printer {
        &CONFIG_MAP_PRINTER
    }
}

/// Keys of data, binaryData and stringData: `[-._a-zA-Z0-9]+`, at most 253 characters.
pub fn validate_keys(object: &Value, errors: &mut Vec<FieldError>) {
    for field in ["data", "binaryData", "stringData"] {
        if let Some(map) = object.get(field).and_then(Value::as_object) {
            for k in map.keys() {
                let ok = !k.is_empty()
                    && k.len() <= 253
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                if !ok {
                    errors.push(FieldError::invalid(format!("{field}[{k}]"), &Value::String(k.clone()), "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
                }
            }
        }
    }
}

/// Once `immutable` is set, data and binaryData stay as they are.
pub fn validate_immutable_data(old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    for field in ["data", "binaryData"] {
        if old.get(field) != new.get(field) {
            errors.push(FieldError::forbidden(
                field,
                "field is immutable when `immutable` is set",
            ));
        }
    }
}

// ---------------------------------------------------------------- table

pub const CONFIG_MAP_COLUMNS: &[Column] = &[
    NAME,
    col("Data", "string", "Data contains the configuration data."),
    AGE,
];

pub static CONFIG_MAP_PRINTER: Printer = Printer::new(CONFIG_MAP_COLUMNS, config_map_cells);

fn config_map_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let entries = map_len(obj, &["data"]) + map_len(obj, &["binaryData"]);
    vec![name(obj), (entries as i64).into(), age(obj, now).into()]
}
