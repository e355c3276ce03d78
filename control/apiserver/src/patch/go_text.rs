//! Error texts shaped like upstream's: Go's JSON decoder messages, the
//! mergepatch errors and Go's `%v` of decoded JSON values.

use serde_json::{Map, Value};

/// Longest value rendering put into an error message; upstream prints whole
/// maps, which for a large list element is more noise than help.
const MAX_ERROR_VALUE_CHARS: usize = 2_048;

/// serde_json's message, reworded like Go's for the common end-of-input case.
pub(super) fn json_syntax_message(error: &serde_json::Error) -> String {
    if error.is_eof() {
        return "unexpected end of JSON input".to_string();
    }
    error.to_string()
}

/// The JSON kind word Go's decoder uses in "cannot unmarshal X into ...".
pub(super) fn go_json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `reflect.TypeOf(v)` of a decoded JSON value, as `%s` prints it.
pub(super) fn go_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(number) => {
            if number.is_f64() {
                "float64"
            } else {
                "int64"
            }
        }
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// mergepatch.ErrBadArgType.
pub(super) fn bad_arg_type_message(expected: &str, actual: &Value) -> String {
    format!(
        "expected a {expected}, but received a {}",
        go_type_name(actual)
    )
}

/// mergepatch.ErrNoMergeKey.
pub(super) fn no_merge_key_message(map: &Map<String, Value>, key: &str) -> String {
    format!(
        "map: {} does not contain declared merge key: {key}",
        go_format_map(map)
    )
}

/// mergepatch.ErrBadPatchType.
pub(super) fn bad_patch_type_message(directive: &Value, map: &Map<String, Value>) -> String {
    let directive = match directive {
        Value::String(text) => text.clone(),
        other => go_format(other),
    };
    format!(
        "unknown patch type: {directive} in map: {}",
        go_format_map(map)
    )
}

/// Go's `%v` of a decoded JSON value (maps print sorted), truncated.
pub(super) fn go_format(value: &Value) -> String {
    let mut out = String::new();
    write_go_format(value, &mut out);
    truncate_for_message(out)
}

pub(super) fn go_format_map(map: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_go_map(map, &mut out);
    truncate_for_message(out)
}

pub(super) fn go_format_list(list: &[Value]) -> String {
    let mut out = String::new();
    write_go_list(list, &mut out);
    truncate_for_message(out)
}

pub(super) fn truncate_for_message(mut text: String) -> String {
    if text.len() > MAX_ERROR_VALUE_CHARS {
        let mut cut = MAX_ERROR_VALUE_CHARS;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

// Recursion here is bounded: values reaching this point were parsed by
// serde_json or serde_yaml, both of which stop at 128 levels. The output is
// capped as it is built so that a huge value costs little.
pub(super) fn write_go_format(value: &Value, out: &mut String) {
    if out.len() > MAX_ERROR_VALUE_CHARS {
        return;
    }
    match value {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => out.push_str(&number.to_string()),
        Value::String(text) => out.push_str(text),
        Value::Array(list) => write_go_list(list, out),
        Value::Object(map) => write_go_map(map, out),
    }
}

pub(super) fn write_go_list(list: &[Value], out: &mut String) {
    out.push('[');
    for (position, item) in list.iter().enumerate() {
        if out.len() > MAX_ERROR_VALUE_CHARS {
            break;
        }
        if position > 0 {
            out.push(' ');
        }
        write_go_format(item, out);
    }
    out.push(']');
}

pub(super) fn write_go_map(map: &Map<String, Value>, out: &mut String) {
    out.push_str("map[");
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for (position, key) in keys.into_iter().enumerate() {
        if out.len() > MAX_ERROR_VALUE_CHARS {
            break;
        }
        if position > 0 {
            out.push(' ');
        }
        out.push_str(key);
        out.push(':');
        if let Some(value) = map.get(key) {
            write_go_format(value, out);
        }
    }
    out.push(']');
}
