//! Strategic merge patch: a port of the apply half of upstream
//! `k8s.io/apimachinery/pkg/util/strategicpatch` (`mergeMap` and friends,
//! with the server-side options `MergeParallelList` and
//! `IgnoreUnmatchedNulls`). This file merges maps and handles the
//! directives; `lists` merges and orders lists.

mod lists;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use serde_json::{Map, Value};

use self::lists::{
    merge_list_field, normalize_element_order, partition_maps_by_presence,
    partition_primitives_by_presence, slice_element_kind,
};
use super::go_text::{
    bad_arg_type_message, bad_patch_type_message, go_format_list, go_json_kind, go_type_name,
    json_syntax_message, no_merge_key_message,
};
use super::strategies::{lookup_field, schema_for, FieldMeta, ListStrategy, Schema};
use super::{PatchError, MAX_DEPTH};

// Strategic merge patch directives (strategicpatch/patch.go).
const DIRECTIVE_MARKER: &str = "$patch";
const DELETE_DIRECTIVE: &str = "delete";
const REPLACE_DIRECTIVE: &str = "replace";
const MERGE_DIRECTIVE: &str = "merge";
const RETAIN_KEYS_DIRECTIVE: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST_PREFIX: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER_PREFIX: &str = "$setElementOrder";

// mergepatch error texts (k8s.io/apimachinery/pkg/util/mergepatch/errors.go).
const ERR_BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST: &str =
    "invalid patch format of setElementOrder list";

pub(super) fn apply_strategic_patch(
    type_name: &str,
    original: &Value,
    body: &[u8],
) -> Result<Value, PatchError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| PatchError::BadRequest(json_syntax_message(&e)))?;
    match patch {
        Value::Object(patch) => strategic_merge(type_name, original, patch),
        // Go's json.Unmarshal of `null` into a map leaves it empty: a no-op.
        Value::Null => Ok(original.clone()),
        other => Err(PatchError::BadRequest(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            go_json_kind(&other)
        ))),
    }
}

pub(super) fn strategic_merge(
    type_name: &str,
    original: &Value,
    patch: Map<String, Value>,
) -> Result<Value, PatchError> {
    let original = match original {
        Value::Object(original) => original.clone(),
        other => {
            return Err(PatchError::MergeFailed(format!(
                "expected a map[string]interface {{}}, but received a {}",
                go_type_name(other)
            )))
        }
    };
    let schema = schema_for(type_name);
    let merged = merge_map(original, patch, &schema, 0)?;
    Ok(Value::Object(merged))
}

// --- mergeMap --------------------------------------------------------------

/// Upstream's `mergeMap` with `MergeParallelList` and `IgnoreUnmatchedNulls`.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: &Schema,
    depth: usize,
) -> Result<Map<String, Value>, PatchError> {
    if depth > MAX_DEPTH {
        return Err(PatchError::TooDeep { limit: MAX_DEPTH });
    }

    if let Some(directive) = patch.get(DIRECTIVE_MARKER) {
        match directive.as_str() {
            Some(REPLACE_DIRECTIVE) => {
                patch.remove(DIRECTIVE_MARKER);
                return Ok(clean_new_map(patch));
            }
            // Upstream returns an empty map: the field stays, emptied.
            Some(DELETE_DIRECTIVE) => return Ok(Map::new()),
            // Upstream rejects `$patch: merge` on a map; merging is what it
            // asks for, so it is accepted as a no-op directive here.
            Some(MERGE_DIRECTIVE) => {
                patch.remove(DIRECTIVE_MARKER);
            }
            _ => {
                let message = bad_patch_type_message(directive, &patch);
                return Err(PatchError::MergeFailed(message));
            }
        }
    }

    apply_retain_keys_directive(&mut original, &mut patch)?;
    merge_set_element_order_lists(&mut original, &mut patch, schema, depth)?;

    for (patch_key, patch_value) in patch {
        let (key, is_delete_list) = if patch_key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX) {
            let key = extract_key(&patch_key, DELETE_FROM_PRIMITIVE_LIST_PREFIX).ok_or(
                PatchError::BadPatchFormat(ERR_BAD_PATCH_FORMAT_FOR_PRIMITIVE_LIST),
            )?;
            (key.to_string(), true)
        } else {
            (patch_key, false)
        };

        // null deletes the field (IgnoreUnmatchedNulls: nothing else to do).
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }

        let Some(slot) = original.get_mut(&key) else {
            if !is_delete_list {
                if let Some(value) = clean_new_value(patch_value) {
                    original.insert(key, value);
                }
            }
            continue;
        };

        let original_value = std::mem::take(slot);
        let merged = match (original_value, patch_value) {
            (Value::Object(original_map), Value::Object(patch_map)) => {
                let meta = lookup_field(schema, &key);
                Some(Value::Object(merge_map(
                    original_map,
                    patch_map,
                    &meta.child,
                    depth + 1,
                )?))
            }
            (Value::Array(original_list), Value::Array(patch_list)) => {
                let meta = lookup_field(schema, &key);
                Some(Value::Array(merge_list_field(
                    original_list,
                    patch_list,
                    &meta,
                    is_delete_list,
                    depth + 1,
                )?))
            }
            (original_value, patch_value) => {
                let same_kind =
                    std::mem::discriminant(&original_value) == std::mem::discriminant(&patch_value);
                if is_delete_list && !same_kind {
                    // A deletion list of the wrong type leaves the field alone.
                    Some(original_value)
                } else {
                    clean_new_value(patch_value)
                }
            }
        };
        match merged {
            Some(value) => {
                if let Some(slot) = original.get_mut(&key) {
                    *slot = value;
                }
            }
            None => {
                original.remove(&key);
            }
        }
    }
    Ok(original)
}

/// Upstream's `applyRetainKeysDirective` (server side): drop the keys of
/// `original` that `$retainKeys` does not list.
fn apply_retain_keys_directive(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain_keys) = patch.remove(RETAIN_KEYS_DIRECTIVE) else {
        return Ok(());
    };
    let Value::Array(retain_keys) = retain_keys else {
        return Err(PatchError::BadPatchFormat(
            ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS,
        ));
    };
    // Only strings can name keys; upstream hashes the raw values and would
    // panic on a map or list in there, refuse those instead.
    let mut retained: HashSet<String> = HashSet::new();
    for key in &retain_keys {
        match key {
            Value::String(key) => {
                retained.insert(key.clone());
            }
            Value::Object(_) | Value::Array(_) => {
                return Err(PatchError::BadPatchFormat(
                    ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS,
                ));
            }
            _ => {}
        }
    }
    // Every field the patch sets must be retained.
    for (key, value) in patch.iter() {
        if value.is_null()
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            || key.starts_with(SET_ELEMENT_ORDER_PREFIX)
        {
            continue;
        }
        if !retained.contains(key) {
            return Err(PatchError::BadPatchFormat(
                ERR_BAD_PATCH_FORMAT_FOR_RETAIN_KEYS,
            ));
        }
    }
    original.retain(|key, _| retained.contains(key));
    Ok(())
}

/// Upstream's `mergePatchIntoOriginal`: merges each list that has a
/// `$setElementOrder/<field>` directive and puts it in that order, removing
/// the directive and the list from `patch`.
fn merge_set_element_order_lists(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: &Schema,
    depth: usize,
) -> Result<(), PatchError> {
    let directive_keys: Vec<String> = patch
        .keys()
        .filter(|key| key.starts_with(SET_ELEMENT_ORDER_PREFIX))
        .cloned()
        .collect();
    for directive_key in directive_keys {
        let Some(order) = patch.remove(&directive_key) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(PatchError::MergeFailed(bad_arg_type_message(
                "[]interface {}",
                &order,
            )));
        };
        let field = extract_key(&directive_key, SET_ELEMENT_ORDER_PREFIX)
            .ok_or(PatchError::BadPatchFormat(
                ERR_BAD_PATCH_FORMAT_FOR_SET_ELEMENT_ORDER_LIST,
            ))?
            .to_string();

        let original_list = match original.get(&field) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => {
                return Err(PatchError::MergeFailed(bad_arg_type_message(
                    "[]interface {}",
                    other,
                )))
            }
        };
        let patch_list = match patch.get(&field) {
            None => None,
            Some(Value::Array(list)) => Some(list.clone()),
            Some(other) => {
                return Err(PatchError::MergeFailed(bad_arg_type_message(
                    "[]interface {}",
                    other,
                )))
            }
        };

        let meta = lookup_field(schema, &field);
        let merge_key = match &meta.list {
            ListStrategy::MergeByKey(key) => Some(key.as_str()),
            ListStrategy::Atomic | ListStrategy::MergePrimitives => None,
        };
        let empty: Vec<Value> = Vec::new();
        validate_patch_with_set_order_list(
            patch_list.as_ref().unwrap_or(&empty),
            &order,
            merge_key,
        )?;

        let original_items = original_list.clone().unwrap_or_default();
        let patch_items = patch_list.clone().unwrap_or_default();
        let merged = match (original_list, patch_list) {
            (Some(original_list), None) => original_list,
            (None, Some(patch_list)) => clean_new_list(patch_list),
            (Some(original_list), Some(patch_list)) => {
                merge_list_field(original_list, patch_list, &meta, false, depth + 1)?
            }
            (None, None) => continue,
        };

        // Upstream fails with "no elements in any of the given slices" when
        // both lists are empty; there is nothing to order, so just store it.
        let Some(kind) = slice_element_kind(&[&original_items, &patch_items])? else {
            original.insert(field.clone(), Value::Array(merged));
            patch.remove(&field);
            continue;
        };
        let (in_order, server_only) = match merge_key {
            Some(key) => partition_maps_by_presence(merged, &order, key)?,
            None => partition_primitives_by_presence(merged, &order),
        };
        let ordered = normalize_element_order(
            in_order,
            server_only,
            &order,
            &original_items,
            merge_key,
            kind,
        )?;
        original.insert(field.clone(), Value::Array(ordered));
        patch.remove(&field);
    }
    Ok(())
}

/// Upstream's `validatePatchWithSetOrderList`: the patch list's items (minus
/// deletions and directives) must appear in `$setElementOrder` in the same
/// relative order.
fn validate_patch_with_set_order_list(
    patch_list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_deleted: Vec<&Value> = if merge_key.is_some() {
        let mut kept = Vec::new();
        for item in patch_list {
            let Value::Object(map) = item else {
                return Err(PatchError::MergeFailed(bad_arg_type_message(
                    "map[string]interface {}",
                    item,
                )));
            };
            if map.get(DIRECTIVE_MARKER).and_then(Value::as_str) != Some(DELETE_DIRECTIVE) {
                kept.push(item);
            }
        }
        kept
    } else {
        patch_list.iter().collect()
    };

    let mut patch_index = 0;
    let mut order_index = 0;
    while patch_index < non_deleted.len() && order_index < order.len() {
        if contains_directive_marker(non_deleted[patch_index]) {
            patch_index += 1;
            continue;
        }
        if merge_key_value_equal(non_deleted[patch_index], &order[order_index], merge_key)? {
            patch_index += 1;
        }
        order_index += 1;
    }
    if patch_index < non_deleted.len() && order_index >= order.len() {
        return Err(PatchError::MergeFailed(format!(
            "the order in patch list:\n{}\n doesn't match {} list:\n{}",
            go_format_list(patch_list),
            SET_ELEMENT_ORDER_PREFIX,
            go_format_list(order)
        )));
    }
    Ok(())
}

fn merge_key_value_equal(
    left: &Value,
    right: &Value,
    merge_key: Option<&str>,
) -> Result<bool, PatchError> {
    let Some(key) = merge_key else {
        return Ok(left == right);
    };
    let (Value::Object(left_map), Value::Object(right_map)) = (left, right) else {
        let offender = if left.is_object() { right } else { left };
        return Err(PatchError::MergeFailed(bad_arg_type_message(
            "map[string]interface {}",
            offender,
        )));
    };
    let Some(left_key) = left_map.get(key) else {
        return Err(PatchError::MergeFailed(no_merge_key_message(left_map, key)));
    };
    let Some(right_key) = right_map.get(key) else {
        return Err(PatchError::MergeFailed(no_merge_key_message(
            right_map, key,
        )));
    };
    Ok(left_key == right_key)
}

// --- cleaning new values ------------------------------------------------------

/// A patch value that lands where the original had nothing (or something of
/// another type): upstream's `discardNullValuesFromPatch` + `removeDirectives`.
/// `None` means "leave the field out" (a map carrying `$patch`). Also drops
/// the other directive keys, which upstream leaves for the typed decoder to
/// ignore; here the result is stored as is.
fn clean_new_value(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(DIRECTIVE_MARKER) {
                return None;
            }
            Some(Value::Object(clean_new_map(map)))
        }
        Value::Array(list) => Some(Value::Array(clean_new_list(list))),
        scalar => Some(scalar),
    }
}

fn clean_new_map(map: Map<String, Value>) -> Map<String, Value> {
    let mut cleaned = Map::new();
    for (key, value) in map {
        if value.is_null() || is_directive_key(&key) {
            continue;
        }
        if let Some(value) = clean_new_value(value) {
            cleaned.insert(key, value);
        }
    }
    cleaned
}

fn clean_new_list(list: Vec<Value>) -> Vec<Value> {
    list.into_iter().filter_map(clean_new_value).collect()
}

pub(super) fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE_MARKER
        || key == RETAIN_KEYS_DIRECTIVE
        || key.starts_with(SET_ELEMENT_ORDER_PREFIX)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
}

fn contains_directive_marker(item: &Value) -> bool {
    item.as_object()
        .is_some_and(|map| map.contains_key(DIRECTIVE_MARKER))
}

/// Upstream's `extractKey`: `"<prefix>/<key>"` -> `key`.
fn extract_key<'a>(directive_key: &'a str, prefix: &str) -> Option<&'a str> {
    let (head, key) = directive_key.split_once('/')?;
    if head != prefix {
        return None;
    }
    Some(key)
}
