//! Lists in a strategic merge patch: merging by merge key or as sets of
//! primitives, the `$patch` and `$deleteFromPrimitiveList` directives inside
//! them, and upstream's element ordering.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::*;

// --- lists -------------------------------------------------------------------

/// Upstream's `mergeSliceHandler`: merge or replace a list field.
pub(super) fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: &FieldMeta,
    is_delete_list: bool,
    depth: usize,
) -> Result<Vec<Value>, PatchError> {
    match &meta.list {
        ListStrategy::MergeByKey(key) => merge_slice(
            original,
            patch,
            Some(key),
            &meta.child,
            is_delete_list,
            depth,
        ),
        ListStrategy::MergePrimitives => {
            merge_slice(original, patch, None, &meta.child, is_delete_list, depth)
        }
        ListStrategy::Atomic => {
            if is_delete_list {
                // Upstream replaces a non-merging list by the deletion list
                // itself; deleting the listed items is what was asked for.
                Ok(delete_from_slice(original, &patch))
            } else {
                Ok(clean_new_list(patch))
            }
        }
    }
}

/// The type of a list element, as Go's `reflect.TypeOf` distinguishes them
/// after `UnmarshalCaseSensitivePreserveInts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ElementKind {
    Null,
    Bool,
    Int,
    Float,
    String,
    List,
    Map,
}

pub(super) fn element_kind(value: &Value) -> ElementKind {
    match value {
        Value::Null => ElementKind::Null,
        Value::Bool(_) => ElementKind::Bool,
        Value::Number(number) => {
            if number.is_f64() {
                ElementKind::Float
            } else {
                ElementKind::Int
            }
        }
        Value::String(_) => ElementKind::String,
        Value::Array(_) => ElementKind::List,
        Value::Object(_) => ElementKind::Map,
    }
}

/// Upstream's `sliceElementType`: all elements of all lists must have one
/// type, which must not be a list. `None` when there are no elements.
pub(super) fn slice_element_kind(lists: &[&Vec<Value>]) -> Result<Option<ElementKind>, PatchError> {
    let mut found: Option<ElementKind> = None;
    for list in lists {
        for item in list.iter() {
            let kind = element_kind(item);
            match found {
                None => {
                    if kind == ElementKind::List {
                        return Err(PatchError::ListOfLists);
                    }
                    found = Some(kind);
                }
                Some(previous) => {
                    if previous != kind {
                        let rendered: Vec<String> =
                            lists.iter().map(|list| go_format_list(list)).collect();
                        return Err(PatchError::MergeFailed(format!(
                            "list element types are not identical: [{}]",
                            rendered.join(" ")
                        )));
                    }
                }
            }
        }
    }
    Ok(found)
}

/// Upstream's `mergeSlice`.
pub(super) fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: Option<&str>,
    element_schema: &Schema,
    is_delete_list: bool,
    depth: usize,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let Some(kind) = slice_element_kind(&[&original, &patch])? else {
        return Ok(original);
    };

    if kind != ElementKind::Map {
        if is_delete_list {
            return Ok(delete_from_slice(original, &patch));
        }
        let mut both = original.clone();
        both.extend(patch.iter().cloned());
        let merged = deduplicate(both);
        let (in_patch, server_only) = match merge_key {
            Some(key) => partition_maps_by_presence(merged, &patch, key)?,
            None => partition_primitives_by_presence(merged, &patch),
        };
        return normalize_element_order(in_patch, server_only, &patch, &original, merge_key, kind);
    }

    let Some(key) = merge_key else {
        return Err(PatchError::MergeFailed(
            "cannot merge lists without merge key for type struct".to_string(),
        ));
    };
    let (original, patch) = merge_slice_with_special_elements(original, patch, key)?;
    let merged =
        merge_slice_without_special_elements(original.clone(), &patch, key, element_schema, depth)?;
    let (in_patch, server_only) = partition_maps_by_presence(merged, &patch, key)?;
    normalize_element_order(in_patch, server_only, &patch, &original, Some(key), kind)
}

/// Upstream's `mergeSliceWithSpecialElements`: applies `$patch: delete` and
/// `$patch: replace` items and returns (original, patch without them).
pub(super) fn merge_slice_with_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain_items = Vec::new();
    let mut replace = false;
    for item in patch {
        let Value::Object(map) = &item else {
            return Err(PatchError::MergeFailed(bad_arg_type_message(
                "map[string]interface {}",
                &item,
            )));
        };
        let Some(directive) = map.get(DIRECTIVE_MARKER) else {
            plain_items.push(item);
            continue;
        };
        match directive.as_str() {
            Some(DELETE_DIRECTIVE) => {
                let Some(key_value) = map.get(merge_key) else {
                    return Err(PatchError::MergeFailed(no_merge_key_message(
                        map, merge_key,
                    )));
                };
                original.retain(|existing| existing.get(merge_key) != Some(key_value));
            }
            // Keep going: other directive items are still pruned.
            Some(REPLACE_DIRECTIVE) => replace = true,
            Some(MERGE_DIRECTIVE) => {
                return Err(PatchError::MergeFailed(
                    "merging lists cannot yet be specified in the patch".to_string(),
                ));
            }
            _ => {
                return Err(PatchError::MergeFailed(bad_patch_type_message(
                    directive, map,
                )))
            }
        }
    }
    if replace {
        return Ok((clean_new_list(plain_items), Vec::new()));
    }
    Ok((original, plain_items))
}

/// Upstream's `mergeSliceWithoutSpecialElements`: merges each patch item into
/// the original item with the same merge key value, or appends it.
pub(super) fn merge_slice_without_special_elements(
    mut original: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    element_schema: &Schema,
    depth: usize,
) -> Result<Vec<Value>, PatchError> {
    // Merge key value -> position of the first original item carrying it;
    // a linear search per patch item would be quadratic on long lists.
    let mut positions: HashMap<String, usize> = HashMap::new();
    for (position, item) in original.iter().enumerate() {
        if let Some(key_value) = item.get(merge_key) {
            positions.entry(identity_key(key_value)).or_insert(position);
        }
    }
    for item in patch {
        let Value::Object(patch_map) = item else {
            return Err(PatchError::MergeFailed(bad_arg_type_message(
                "map[string]interface {}",
                item,
            )));
        };
        let Some(key_value) = patch_map.get(merge_key) else {
            return Err(PatchError::MergeFailed(no_merge_key_message(
                patch_map, merge_key,
            )));
        };
        match positions.get(&identity_key(key_value)).copied() {
            Some(position) => {
                let existing = std::mem::take(&mut original[position]);
                let Value::Object(existing_map) = existing else {
                    return Err(PatchError::MergeFailed(format!(
                        "value for key {position} is not a map."
                    )));
                };
                original[position] = Value::Object(merge_map(
                    existing_map,
                    patch_map.clone(),
                    element_schema,
                    depth + 1,
                )?);
            }
            None => {
                if let Some(new_item) = clean_new_value(item.clone()) {
                    positions.insert(identity_key(key_value), original.len());
                    original.push(new_item);
                }
            }
        }
    }
    Ok(original)
}

/// Upstream's `deleteFromSlice`: the `$deleteFromPrimitiveList` list.
pub(super) fn delete_from_slice(current: Vec<Value>, to_delete: &[Value]) -> Vec<Value> {
    let doomed: HashSet<String> = to_delete.iter().map(identity_key).collect();
    current
        .into_iter()
        .filter(|item| !doomed.contains(&identity_key(item)))
        .collect()
}

/// Removes repeated items, keeping first occurrences (upstream's
/// `deduplicateScalars` scrambles the order, which is then normalized anyway).
pub(super) fn deduplicate(items: Vec<Value>) -> Vec<Value> {
    let mut seen: HashSet<String> = HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(identity_key(item)))
        .collect()
}

/// Splits `merged` into the items present in `partition_by` and the others.
pub(super) fn partition_primitives_by_presence(
    merged: Vec<Value>,
    partition_by: &[Value],
) -> (Vec<Value>, Vec<Value>) {
    let present: HashSet<String> = partition_by.iter().map(identity_key).collect();
    merged
        .into_iter()
        .partition(|item| present.contains(&identity_key(item)))
}

/// Splits `merged` into the maps whose merge key value appears in
/// `partition_by` and the others.
pub(super) fn partition_maps_by_presence(
    merged: Vec<Value>,
    partition_by: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut present: HashSet<String> = HashSet::new();
    for (position, item) in partition_by.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(PatchError::MergeFailed(format!(
                "value for key {position} is not a map."
            )));
        };
        if let Some(key_value) = map.get(merge_key) {
            present.insert(identity_key(key_value));
        }
    }
    let mut in_list = Vec::new();
    let mut others = Vec::new();
    for item in merged {
        let Value::Object(map) = &item else {
            return Err(PatchError::MergeFailed(bad_arg_type_message(
                "map[string]interface {}",
                &item,
            )));
        };
        let Some(key_value) = map.get(merge_key) else {
            return Err(PatchError::MergeFailed(no_merge_key_message(
                map, merge_key,
            )));
        };
        if present.contains(&identity_key(key_value)) {
            in_list.push(item);
        } else {
            others.push(item);
        }
    }
    Ok((in_list, others))
}

// --- ordering (upstream's normalizeElementOrder and helpers) ---------------

/// Where each item sits in an ordering list: maps are identified by their
/// merge key value, other items by themselves. First occurrence wins, as in
/// upstream's `index`.
pub(super) struct OrderIndex {
    positions: HashMap<String, usize>,
    merge_key: Option<String>,
    kind: ElementKind,
}

impl OrderIndex {
    fn new(order: &[Value], merge_key: Option<&str>, kind: ElementKind) -> OrderIndex {
        let mut index = OrderIndex {
            positions: HashMap::new(),
            merge_key: merge_key.map(str::to_string),
            kind,
        };
        for (position, item) in order.iter().enumerate() {
            let identity = index.identity(item);
            index.positions.entry(identity).or_insert(position);
        }
        index
    }

    fn identity(&self, item: &Value) -> String {
        if self.kind == ElementKind::Map {
            // Go: the merge key's value, nil for a non-map or a missing key.
            let key = self.merge_key.as_deref().unwrap_or("");
            match item.get(key) {
                Some(key_value) => identity_key(key_value),
                None => identity_key(&Value::Null),
            }
        } else {
            identity_key(item)
        }
    }

    fn position(&self, item: &Value) -> Option<usize> {
        self.positions.get(&self.identity(item)).copied()
    }
}

/// Sorts the patch items by `patch_order` and the server-only items by
/// `server_order`, then interleaves them (upstream's normalizeElementOrder).
pub(super) fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    kind: ElementKind,
) -> Result<Vec<Value>, PatchError> {
    let patch_items = normalize_slice_order(patch_items, patch_order, merge_key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, kind)?;
    Ok(merge_sorted_slice(
        server_only,
        patch_items,
        server_order,
        merge_key,
        kind,
    ))
}

/// Upstream's `normalizeSliceOrder`: stable sort by position in `order`;
/// `$patch: delete` items go last.
pub(super) fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
    kind: ElementKind,
) -> Result<Vec<Value>, PatchError> {
    let mut to_delete = Vec::new();
    let mut to_sort = to_sort;
    if kind == ElementKind::Map {
        let key = merge_key.unwrap_or("");
        for item in to_sort.iter().chain(order.iter()) {
            let Value::Object(map) = item else {
                return Err(PatchError::MergeFailed(bad_arg_type_message(
                    "map[string]interface {}",
                    item,
                )));
            };
            if !map.contains_key(key) {
                return Err(PatchError::MergeFailed(no_merge_key_message(map, key)));
            }
        }
        let (deletions, kept): (Vec<Value>, Vec<Value>) = to_sort.into_iter().partition(|item| {
            item.get(DIRECTIVE_MARKER).and_then(Value::as_str) == Some(DELETE_DIRECTIVE)
        });
        to_delete = deletions;
        to_sort = kept;
    }
    let index = OrderIndex::new(order, merge_key, kind);
    // Items missing from `order` (none, in the calls above) sort last.
    let mut keyed: Vec<(usize, Value)> = to_sort
        .into_iter()
        .map(|item| (index.position(&item).unwrap_or(usize::MAX), item))
        .collect();
    keyed.sort_by_key(|(position, _)| *position);
    let mut sorted: Vec<Value> = keyed.into_iter().map(|(_, item)| item).collect();
    sorted.extend(to_delete);
    Ok(sorted)
}

/// Upstream's `mergeSortedSlice`: inserts the server-only items (`left`)
/// among the patch items (`right`) following `server_order`; a patch item
/// the server does not know yet goes before the remaining server items.
pub(super) fn merge_sorted_slice(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: Option<&str>,
    kind: ElementKind,
) -> Vec<Value> {
    let index = OrderIndex::new(server_order, merge_key, kind);
    let mut result = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => match (index.position(l), index.position(r)) {
                (Some(li), Some(ri)) => li < ri,
                _ => false,
            },
        };
        let next = if take_left { left.next() } else { right.next() };
        if let Some(item) = next {
            result.push(item);
        }
    }
    result
}

// ---------------------------------------------------------------------------
// Helpers: identity, sizes, Go-style error texts
// ---------------------------------------------------------------------------

/// A string that is equal for two values exactly when Go's `==` on the
/// decoded interfaces is (for scalars), usable as a hash key. Integers and
/// floats stay distinct (`1` vs `1.0`) as int64 and float64 do in Go.
pub(super) fn identity_key(value: &Value) -> String {
    match value {
        Value::String(text) => format!("s{text}"),
        Value::Number(number) => format!("n{number}"),
        Value::Bool(flag) => format!("b{flag}"),
        Value::Null => "z".to_string(),
        // Go cannot compare these (it panics); any stable identity will do.
        Value::Array(_) | Value::Object(_) => format!("j{value}"),
    }
}
