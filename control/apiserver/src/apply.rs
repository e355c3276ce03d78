//! Server-side apply field ownership, for the appliers: each `fieldManager` that applies gets a
//! `managedFields` entry (operation `Apply`, `fieldsType: FieldsV1`, upstream's format) listing
//! the fields its configuration set; a field the manager applied before and leaves out now is
//! removed from the object, unless another applier also set it. This is what makes
//! `kubectl apply --server-side` and kube-rs `Patch::Apply` forget fields.
//!
//! Conflicts between appliers: a field another manager applied that this apply would change
//! is a conflict (409, upstream's message and `FieldManagerConflict` causes), unless the apply
//! forces it, which moves the field to this manager.
//!
//! Not done (upstream's structured-merge-diff does it): fields changed by ordinary updates are
//! not recorded as owned by their manager (no `Update` entries), so an apply never conflicts
//! with a `kubectl edit` or a controller's update.
//!
//! fieldsV1 keys: `f:<field>` for object and map fields, `k:<json of the merge key>` for items
//! of lists merged by key, `v:<json value>` for items of merged primitive lists, and `.` for
//! "this list item itself". A list without a merge strategy is one field (atomic).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::patch::{lookup_field, schema_for, ListStrategy, Schema};

/// Top-level and metadata fields that are the server's, never an applier's.
const SERVER_FIELDS: &[&str] = &["apiVersion", "kind", "status"];
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The fields an applied configuration sets, as fieldsV1.
pub fn field_set(type_name: &str, config: &Value) -> Value {
    let Some(object) = config.as_object() else {
        return json!({});
    };
    let mut out = Map::new();
    for (key, value) in object {
        if SERVER_FIELDS.contains(&key.as_str()) {
            continue;
        }
        let field = lookup_field(&schema_for(type_name), key);
        let mut entry = fields_of(value, &field.list, &field.child);
        if key == "metadata" {
            if let Some(m) = entry.as_object_mut() {
                for k in SERVER_METADATA {
                    m.remove(&format!("f:{k}"));
                }
                if m.is_empty() {
                    continue;
                }
            }
        }
        out.insert(format!("f:{key}"), entry);
    }
    Value::Object(out)
}

/// fieldsV1 below one value.
fn fields_of(value: &Value, list: &ListStrategy, schema: &Schema) -> Value {
    match value {
        Value::Object(object) => {
            let mut out = Map::new();
            for (key, child) in object {
                let field = lookup_field(schema, key);
                out.insert(
                    format!("f:{key}"),
                    fields_of(child, &field.list, &field.child),
                );
            }
            Value::Object(out)
        }
        Value::Array(items) => match list {
            ListStrategy::MergeByKey(merge_key) => {
                let mut out = Map::new();
                for item in items {
                    let Some(key_value) = item.get(merge_key) else {
                        continue;
                    };
                    let mut entry = match fields_of(item, &ListStrategy::Atomic, schema) {
                        Value::Object(m) => m,
                        _ => Map::new(),
                    };
                    entry.insert(".".into(), json!({}));
                    out.insert(
                        format!("k:{}", json!({ merge_key.as_str(): key_value })),
                        Value::Object(entry),
                    );
                }
                Value::Object(out)
            }
            ListStrategy::MergePrimitives => Value::Object(
                items
                    .iter()
                    .map(|item| (format!("v:{item}"), json!({})))
                    .collect(),
            ),
            ListStrategy::Atomic => json!({}),
        },
        _ => json!({}),
    }
}

/// The fields `manager` owned through its last apply.
pub fn previous(object: &Value, manager: &str) -> Value {
    entries(object)
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == "Apply")
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or_else(|| json!({}))
}

/// The fields other appliers own.
pub fn others(object: &Value, manager: &str) -> Vec<Value> {
    entries(object)
        .iter()
        .filter(|e| e["manager"] != manager && e["operation"] == "Apply")
        .map(|e| e["fieldsV1"].clone())
        .collect()
}

fn entries(object: &Value) -> Vec<Value> {
    object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Removes from `object` what `old` has and `new` lacks, unless one of `others` has it.
pub fn remove_dropped(object: &mut Value, old: &Value, new: &Value, others: &[Value]) {
    let (Some(old), Some(obj)) = (old.as_object(), object.as_object_mut()) else {
        return;
    };
    let others: Vec<&Value> = others.iter().collect();
    remove_in_object(obj, old, new, &others);
}

fn child<'a>(set: &'a Value, key: &str) -> Option<&'a Value> {
    set.as_object().and_then(|m| m.get(key))
}

fn children_of<'a>(sets: &[&'a Value], key: &str) -> Vec<&'a Value> {
    sets.iter().filter_map(|s| child(s, key)).collect()
}

/// A fieldsV1 node that is owned as a whole: a leaf field (`{}`), or a list item (`.`).
fn owned_whole(node: &Value) -> bool {
    node.as_object()
        .is_none_or(|m| m.is_empty() || m.contains_key("."))
}

/// Only what was owned as a whole is removed; a parent (like `metadata`) whose owned children
/// were all dropped stays, with those children removed.
fn remove_in_object(
    object: &mut Map<String, Value>,
    old: &Map<String, Value>,
    new: &Value,
    others: &[&Value],
) {
    for (key, old_child) in old {
        let Some(field) = key.strip_prefix("f:") else {
            continue;
        };
        let new_child = child(new, key);
        let other_children = children_of(others, key);
        if new_child.is_none() && other_children.is_empty() && owned_whole(old_child) {
            object.remove(field);
            continue;
        }
        let empty = json!({});
        let new_child = new_child.unwrap_or(&empty);
        match object.get_mut(field) {
            Some(Value::Object(inner)) => {
                if let Some(old_inner) = old_child.as_object() {
                    remove_in_object(inner, old_inner, new_child, &other_children);
                }
            }
            Some(Value::Array(items)) => {
                remove_in_list(items, old_child, new_child, &other_children)
            }
            _ => {}
        }
    }
}

fn remove_in_list(items: &mut Vec<Value>, old: &Value, new: &Value, others: &[&Value]) {
    let Some(old) = old.as_object() else {
        return;
    };
    for (key, old_child) in old {
        let new_child = child(new, key);
        let other_children = children_of(others, key);
        let dropped = new_child.is_none() && other_children.is_empty();
        if let Some(item_key) = key.strip_prefix("k:") {
            let Ok(Value::Object(wanted)) = serde_json::from_str::<Value>(item_key) else {
                continue;
            };
            let matches = |item: &Value| wanted.iter().all(|(k, v)| item.get(k) == Some(v));
            if dropped && owned_whole(old_child) {
                items.retain(|item| !matches(item));
            } else if let Some(Value::Object(inner)) = items.iter_mut().find(|i| matches(i)) {
                let empty = json!({});
                if let Some(old_inner) = old_child.as_object() {
                    remove_in_object(
                        inner,
                        old_inner,
                        new_child.unwrap_or(&empty),
                        &other_children,
                    );
                }
            }
        } else if let Some(value) = key.strip_prefix("v:") {
            if dropped {
                if let Ok(value) = serde_json::from_str::<Value>(value) {
                    items.retain(|item| *item != value);
                }
            }
        }
    }
}

/// A field another applier owns that an apply would change (upstream's `merge.Conflict`).
#[derive(Debug, PartialEq)]
pub struct Conflict {
    pub manager: String,
    /// Upstream's path text: `.spec.containers[name="nginx"].image`.
    pub path: String,
    /// The fieldsV1 keys down to the field.
    keys: Vec<String>,
}

/// The fields of `fields` (what `manager` applies) that other appliers own and whose value the
/// apply changes from `current` to `applied`.
pub fn conflicts(current: &Value, applied: &Value, fields: &Value, manager: &str) -> Vec<Conflict> {
    let mut out = Vec::new();
    for entry in entries(current) {
        if entry["manager"] == manager || entry["operation"] != "Apply" {
            continue;
        }
        let owner = entry["manager"].as_str().unwrap_or_default();
        let mut keys = Vec::new();
        walk_conflicts(
            fields,
            &entry["fieldsV1"],
            Some(current),
            Some(applied),
            &mut keys,
            owner,
            &mut out,
        );
    }
    out
}

fn walk_conflicts(
    mine: &Value,
    theirs: &Value,
    current: Option<&Value>,
    applied: Option<&Value>,
    keys: &mut Vec<String>,
    owner: &str,
    out: &mut Vec<Conflict>,
) {
    let (Some(mine), Some(theirs)) = (mine.as_object(), theirs.as_object()) else {
        return;
    };
    for (key, my_child) in mine {
        let Some(their_child) = theirs.get(key) else {
            continue;
        };
        if key == "." {
            continue;
        }
        let cur = current.and_then(|v| step(v, key));
        let new = applied.and_then(|v| step(v, key));
        keys.push(key.clone());
        if owned_whole(my_child) && owned_whole(their_child) {
            if cur != new {
                out.push(Conflict {
                    manager: owner.to_string(),
                    path: path_text(keys),
                    keys: keys.clone(),
                });
            }
        } else {
            walk_conflicts(my_child, their_child, cur, new, keys, owner, out);
        }
        keys.pop();
    }
}

/// The value below `value` that a fieldsV1 key names.
fn step<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    if let Some(field) = key.strip_prefix("f:") {
        return value.get(field);
    }
    let items = value.as_array()?;
    if let Some(k) = key.strip_prefix("k:") {
        let Ok(Value::Object(wanted)) = serde_json::from_str::<Value>(k) else {
            return None;
        };
        return items
            .iter()
            .find(|item| wanted.iter().all(|(k, v)| item.get(k) == Some(v)));
    }
    let v = serde_json::from_str::<Value>(key.strip_prefix("v:")?).ok()?;
    items.iter().find(|item| **item == v)
}

/// Upstream's `fieldpath.Path` text for fieldsV1 keys.
fn path_text(keys: &[String]) -> String {
    let mut out = String::new();
    for key in keys {
        if let Some(field) = key.strip_prefix("f:") {
            out.push('.');
            out.push_str(field);
        } else if let Some(k) = key.strip_prefix("k:") {
            let parts: Vec<String> = match serde_json::from_str::<Value>(k) {
                Ok(Value::Object(m)) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                _ => vec![k.to_string()],
            };
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = key.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        }
    }
    out
}

/// Upstream's 409 for `conflicts` (`NewConflictError`): one line for one conflict, else grouped
/// by manager.
pub fn conflict_error(conflicts: &[Conflict]) -> ApiError {
    let message = if let [only] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with \"{}\": {}",
            only.manager, only.path
        )
    } else {
        let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for manager in managers {
            lines.push(format!("conflicts with \"{manager}\":"));
            for c in conflicts.iter().filter(|c| c.manager == manager) {
                lines.push(format!("- {}", c.path));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let causes = conflicts
        .iter()
        .map(|c| StatusCause {
            reason: Some("FieldManagerConflict".into()),
            message: Some(format!("conflict with \"{}\"", c.manager)),
            field: Some(c.path.clone()),
        })
        .collect();
    let mut error = ApiError::new(409, "Conflict", message);
    error.details = Some(Box::new(StatusDetails {
        causes: Some(causes),
        ..StatusDetails::default()
    }));
    error
}

/// A forced apply takes the conflicting fields: they leave the other managers' entries (an
/// entry left with no field goes).
pub fn take_over(object: &mut Value, conflicts: &[Conflict]) {
    let mut entries = entries(object);
    for c in conflicts {
        for entry in entries
            .iter_mut()
            .filter(|e| e["manager"] == c.manager.as_str() && e["operation"] == "Apply")
        {
            remove_keys(&mut entry["fieldsV1"], &c.keys);
        }
    }
    entries.retain(|e| e["fieldsV1"].as_object().is_none_or(|m| !m.is_empty()));
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("managedFields".into(), Value::Array(entries));
    }
}

/// Removes the node at `keys` from a fieldsV1 set, and parents left empty by it.
fn remove_keys(set: &mut Value, keys: &[String]) {
    let Some((first, rest)) = keys.split_first() else {
        return;
    };
    let Some(map) = set.as_object_mut() else {
        return;
    };
    if rest.is_empty() {
        map.remove(first);
        return;
    }
    if let Some(child) = map.get_mut(first) {
        remove_keys(child, rest);
        if child.as_object().is_some_and(|m| m.is_empty()) {
            map.remove(first);
        }
    }
}

/// Replaces `manager`'s Apply entry in metadata.managedFields (in place), or adds it.
pub fn record(object: &mut Value, manager: &str, api_version: &str, fields: Value, now: &str) {
    let entry = json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    });
    let mut entries = entries(object);
    match entries
        .iter_mut()
        .find(|e| e["manager"] == manager && e["operation"] == "Apply")
    {
        Some(existing) => *existing = entry,
        None => entries.push(entry),
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("managedFields".into(), Value::Array(entries));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";

    fn deployment(env: &[&str], labels: &[&str]) -> Value {
        let env: Vec<Value> = env
            .iter()
            .map(|n| json!({"name": n, "value": "1"}))
            .collect();
        let labels: Map<String, Value> =
            labels.iter().map(|l| (l.to_string(), json!("x"))).collect();
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": labels},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i", "env": env, "args": ["a", "b"]}]}}}
        })
    }

    #[test]
    fn field_sets_use_upstream_keys() {
        let set = field_set(DEPLOYMENT, &deployment(&["A"], &["app"]));
        assert!(set.get("f:apiVersion").is_none());
        assert_eq!(set["f:metadata"], json!({"f:labels": {"f:app": {}}}));
        let container =
            &set["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"];
        assert_eq!(container["."], json!({}));
        assert_eq!(container["f:args"], json!({}), "atomic list is one field");
        assert_eq!(
            container["f:env"]["k:{\"name\":\"A\"}"]["f:value"],
            json!({})
        );
    }

    #[test]
    fn fields_left_out_of_the_next_apply_are_removed_unless_another_applier_has_them() {
        let first = field_set(DEPLOYMENT, &deployment(&["A", "B"], &["app", "tier"]));
        let second = field_set(DEPLOYMENT, &deployment(&["A"], &["app"]));
        let mut live = deployment(&["A", "B"], &["app", "tier", "other"]);
        remove_dropped(&mut live, &first, &second, &[]);
        assert_eq!(
            live["metadata"]["labels"],
            json!({"app": "x", "other": "x"})
        );
        let env = &live["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env, &json!([{"name": "A", "value": "1"}]));

        let mut live = deployment(&["A", "B"], &["app", "tier"]);
        let other = field_set(DEPLOYMENT, &deployment(&[], &["tier"]));
        remove_dropped(&mut live, &first, &second, &[other]);
        assert_eq!(live["metadata"]["labels"], json!({"app": "x", "tier": "x"}));
    }

    #[test]
    fn parents_stay_when_all_their_owned_children_are_dropped() {
        let cm = |data: Value, labels: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": labels}, "data": data});
        let first = field_set(
            "io.k8s.api.core.v1.ConfigMap",
            &cm(json!({"a": "1"}), json!({"x": "y"})),
        );
        let second = field_set(
            "io.k8s.api.core.v1.ConfigMap",
            &json!({"metadata": {"name": "c"}, "data": {"a": "1"}}),
        );
        let mut live = cm(json!({"a": "1"}), json!({"x": "y"}));
        remove_dropped(&mut live, &first, &second, &[]);
        assert_eq!(live["metadata"]["name"], "c");
        assert_eq!(live["metadata"]["labels"], json!({}));
        assert_eq!(live["data"], json!({"a": "1"}));
    }

    #[test]
    fn record_replaces_only_the_managers_apply_entry() {
        let mut live = json!({"metadata": {"managedFields": [
            {"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:a": {}}},
            {"manager": "other", "operation": "Apply", "fieldsV1": {"f:b": {}}}
        ]}});
        assert_eq!(previous(&live, "kubectl"), json!({"f:a": {}}));
        assert_eq!(others(&live, "kubectl"), vec![json!({"f:b": {}})]);
        record(
            &mut live,
            "kubectl",
            "v1",
            json!({"f:c": {}}),
            "2026-11-23T00:00:00Z",
        );
        let entries = live["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(previous(&live, "kubectl"), json!({"f:c": {}}));
    }

    #[test]
    fn a_second_applier_conflicts_unless_it_forces() {
        let mut current = json!({"metadata": {"name": "c"}, "data": {"x": "1", "y": "2"}});
        record(
            &mut current,
            "first",
            "v1",
            json!({"f:data": {"f:x": {}, "f:y": {}}}),
            "t",
        );
        let config = json!({"data": {"x": "2"}});
        let fields = field_set("io.k8s.api.core.v1.ConfigMap", &config);
        let applied = json!({"metadata": {"name": "c"}, "data": {"x": "2", "y": "2"}});
        let found = conflicts(&current, &applied, &fields, "second");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, ".data.x");
        assert_eq!(
            conflict_error(&found).message,
            "Apply failed with 1 conflict: conflict with \"first\": .data.x"
        );
        // The same value is no conflict.
        let same = json!({"metadata": {"name": "c"}, "data": {"x": "1", "y": "2"}});
        assert!(conflicts(&current, &same, &fields, "second").is_empty());
        // Forced: the field moves; the first applier keeps y.
        take_over(&mut current, &found);
        assert_eq!(previous(&current, "first"), json!({"f:data": {"f:y": {}}}));
    }

    #[test]
    fn keyed_list_items_name_their_keys() {
        let keys = vec![
            "f:spec".to_string(),
            "f:containers".into(),
            r#"k:{"name":"nginx"}"#.into(),
            "f:image".into(),
        ];
        assert_eq!(path_text(&keys), r#".spec.containers[name="nginx"].image"#);
    }
}
