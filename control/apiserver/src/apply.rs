//! Field ownership (`metadata.managedFields`), as upstream's structured-merge-diff keeps it.
//!
//! Every write records who set what. An apply (`application/apply-patch+yaml`) gives its
//! `fieldManager` an `Apply` entry listing the fields its configuration set; a field the
//! manager applied before and leaves out now is removed from the object unless another
//! manager also owns it. Ordinary writes (create, update, patch, `/status`, `/scale`) give
//! their manager (`?fieldManager=`, else the user agent's first word: `kubectl-edit`,
//! `kubectl-client-side-apply`) an `Update` entry: the fields the write added or changed
//! become its own and leave every other manager's entry, fields it removed leave every entry.
//! Entries are kept per manager, operation and subresource (`subresource: status`), with the
//! time of their last change; an entry left with no field goes.
//!
//! Conflicts: an apply that would change a field another manager owns (an applier or an
//! updater) is a conflict (409, upstream's message and `FieldManagerConflict` causes) unless
//! forced, which moves the field to the applier. Two appliers applying the same value share
//! the field.
//!
//! fieldsV1 keys: `f:<field>` for object and map fields, `k:<json of the merge key>` for items
//! of lists merged by key, `v:<json value>` for items of merged primitive lists, and `.` for
//! "this list item itself". A list without a merge strategy is one field (atomic).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::patch::{lookup_field, schema_for, ListStrategy, Schema};
use crate::resources::ResourceInfo;

/// The type a resource's objects merge and record fields by: a custom resource's schema, or
/// the built-in type's entry in the patch strategies.
pub fn type_name(info: &ResourceInfo) -> String {
    match info.custom.and_then(|c| c.schema.as_ref()) {
        Some(schema) => crate::patch::custom_type_name(schema),
        None => (info.typed.definition)().to_string(),
    }
}

/// A managedFields entry's identity: upstream keeps one per manager, operation and
/// subresource (`""` for the main resource).
#[derive(Clone, Copy, Debug)]
pub struct Owner<'a> {
    pub manager: &'a str,
    pub operation: Operation,
    pub subresource: &'a str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

impl Owner<'_> {
    fn owns(&self, entry: &Value) -> bool {
        entry["manager"] == self.manager
            && entry["operation"] == self.operation.name()
            && entry["subresource"].as_str().unwrap_or_default() == self.subresource
    }
}

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

/// The fields an applied configuration (or a whole object) sets, as fieldsV1. `status` counts
/// only with `with_status` (a `/status` write, or a resource without that subresource).
pub fn field_set(type_name: &str, config: &Value, with_status: bool) -> Value {
    let Some(object) = config.as_object() else {
        return json!({});
    };
    let mut out = Map::new();
    for (key, value) in object {
        if SERVER_FIELDS.contains(&key.as_str()) && !(with_status && key == "status") {
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

/// The fields `owner` owned through its last write.
pub fn previous(object: &Value, owner: &Owner) -> Value {
    entries(object)
        .iter()
        .find(|e| owner.owns(e))
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or_else(|| json!({}))
}

/// The fields every other entry owns.
pub fn others(object: &Value, owner: &Owner) -> Vec<Value> {
    entries(object)
        .iter()
        .filter(|e| !owner.owns(e))
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
    /// The conflicting entry's operation, subresource and (for an `Update`) API version.
    operation: String,
    subresource: String,
    api_version: Option<String>,
    /// Upstream's path text: `.spec.containers[name="nginx"].image`.
    pub path: String,
    /// The fieldsV1 keys down to the field.
    keys: Vec<String>,
}

/// The fields of `fields` (what `owner` applies) that other managers own and whose value the
/// apply changes from `current` to `applied`.
pub fn conflicts(current: &Value, applied: &Value, fields: &Value, owner: &Owner) -> Vec<Conflict> {
    let mut out = Vec::new();
    for entry in entries(current) {
        if owner.owns(&entry) {
            continue;
        }
        let mut found = Vec::new();
        let mut keys = Vec::new();
        walk_conflicts(
            fields,
            &entry["fieldsV1"],
            Some(current),
            Some(applied),
            &mut keys,
            &mut found,
        );
        let text = |k: &str| entry[k].as_str().unwrap_or_default().to_string();
        let update = entry["operation"] == "Update";
        out.extend(found.into_iter().map(|keys| Conflict {
            manager: text("manager"),
            operation: text("operation"),
            subresource: text("subresource"),
            api_version: update.then(|| text("apiVersion")),
            path: path_text(&keys),
            keys,
        }));
    }
    out
}

fn walk_conflicts(
    mine: &Value,
    theirs: &Value,
    current: Option<&Value>,
    applied: Option<&Value>,
    keys: &mut Vec<String>,
    out: &mut Vec<Vec<String>>,
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
                out.push(keys.clone());
            }
        } else {
            walk_conflicts(my_child, their_child, cur, new, keys, out);
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

impl Conflict {
    /// Upstream's name of the other manager: `"kubectl-edit" using v1` for an updater (and
    /// `with subresource "status"` for an entry of a subresource).
    fn with(&self) -> String {
        let mut text = format!("\"{}\"", self.manager);
        if let Some(version) = &self.api_version {
            text.push_str(&format!(" using {version}"));
        }
        if !self.subresource.is_empty() {
            text.push_str(&format!(" with subresource \"{}\"", self.subresource));
        }
        text
    }
}

/// Upstream's 409 for `conflicts` (`NewConflictError`): one line for one conflict, else grouped
/// by manager.
pub fn conflict_error(conflicts: &[Conflict]) -> ApiError {
    let message = if let [only] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.with(),
            only.path
        )
    } else {
        let mut managers: Vec<String> = conflicts.iter().map(Conflict::with).collect();
        managers.sort();
        managers.dedup();
        let mut lines = Vec::new();
        for manager in managers {
            lines.push(format!("conflicts with {manager}:"));
            for c in conflicts.iter().filter(|c| c.with() == manager) {
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
            message: Some(format!("conflict with {}", c.with())),
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
        for entry in entries.iter_mut().filter(|e| {
            e["manager"] == c.manager.as_str()
                && e["operation"] == c.operation.as_str()
                && e["subresource"].as_str().unwrap_or_default() == c.subresource
        }) {
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

/// Replaces `owner`'s entry in metadata.managedFields (in place), or adds it.
pub fn record(object: &mut Value, owner: &Owner, api_version: &str, fields: Value, now: &str) {
    let mut entry = json!({
        "manager": owner.manager,
        "operation": owner.operation.name(),
        "apiVersion": api_version,
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    });
    if !owner.subresource.is_empty() {
        entry["subresource"] = json!(owner.subresource);
    }
    let mut entries = entries(object);
    match entries.iter_mut().find(|e| owner.owns(e)) {
        Some(existing) => *existing = entry,
        None => entries.push(entry),
    }
    set_entries(object, entries);
}

fn set_entries(object: &mut Value, entries: Vec<Value>) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(entries));
        }
    }
}

/// An ordinary write from `old` (`{}` for a create) to `new`: the fields it added or changed
/// become `owner`'s (an `Update` entry) and leave the other entries; the fields it removed
/// leave every entry (upstream's `Updater.Update`). `new` keeps `old`'s entries when the
/// request carried none.
pub fn record_update(
    old: &Value,
    new: &mut Value,
    type_name: &str,
    owner: &Owner,
    api_version: &str,
    now: &str,
    with_status: bool,
) {
    if new.pointer("/metadata/managedFields").is_none() {
        if let Some(live) = old.pointer("/metadata/managedFields") {
            if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("managedFields".into(), live.clone());
            }
        }
    }
    let old_set = field_set(type_name, old, with_status);
    let new_set = field_set(type_name, new, with_status);
    let removed = difference(&old_set, &new_set);
    let changed = union(
        &difference(&new_set, &old_set),
        &modified(&old_set, &new_set, Some(old), Some(new)),
    );
    if is_empty(&changed) && is_empty(&removed) {
        return;
    }
    let mut entries = entries(new);
    let mut mine = json!({});
    for entry in entries.iter_mut() {
        if owner.owns(entry) {
            mine = entry["fieldsV1"].take();
            continue;
        }
        entry["fieldsV1"] = difference(&difference(&entry["fieldsV1"], &changed), &removed);
    }
    let mine = union(&difference(&mine, &removed), &changed);
    entries.retain(|e| !is_empty(&e["fieldsV1"]) || (owner.owns(e) && !is_empty(&mine)));
    set_entries(new, entries);
    if !is_empty(&mine) {
        record(new, owner, api_version, mine, now);
    }
}

fn is_empty(set: &Value) -> bool {
    set.as_object().is_none_or(Map::is_empty)
}

/// A fieldsV1 node that is itself a field of the set: a leaf, or a list item (`.`).
fn is_member(node: &Value) -> bool {
    node.as_object()
        .is_none_or(|m| m.is_empty() || m.contains_key("."))
}

/// The fields of `a` that `b` lacks.
fn difference(a: &Value, b: &Value) -> Value {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a.clone();
    };
    let mut out = Map::new();
    for (key, a_node) in a {
        match b.get(key) {
            None => {
                out.insert(key.clone(), a_node.clone());
            }
            Some(b_node) if is_empty(a_node) => {
                if !is_member(b_node) {
                    out.insert(key.clone(), a_node.clone());
                }
            }
            Some(b_node) => {
                let rest = difference(a_node, b_node);
                if !is_empty(&rest) {
                    out.insert(key.clone(), rest);
                }
            }
        }
    }
    Value::Object(out)
}

/// The fields of either set.
fn union(a: &Value, b: &Value) -> Value {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a.clone();
    };
    let mut out = a.clone();
    for (key, b_node) in b {
        let merged = match out.get(key) {
            Some(a_node) => union(a_node, b_node),
            None => b_node.clone(),
        };
        out.insert(key.clone(), merged);
    }
    Value::Object(out)
}

/// The leaf fields both sets have whose values differ between `old` and `new`.
fn modified(old_set: &Value, new_set: &Value, old: Option<&Value>, new: Option<&Value>) -> Value {
    let (Some(old_set), Some(new_set)) = (old_set.as_object(), new_set.as_object()) else {
        return json!({});
    };
    let mut out = Map::new();
    for (key, new_node) in new_set {
        let Some(old_node) = old_set.get(key).filter(|_| key != ".") else {
            continue;
        };
        let old_value = old.and_then(|v| step(v, key));
        let new_value = new.and_then(|v| step(v, key));
        if is_empty(new_node) || is_empty(old_node) {
            if old_value != new_value {
                out.insert(key.clone(), json!({}));
            }
        } else {
            let inner = modified(old_node, new_node, old_value, new_value);
            if !is_empty(&inner) {
                out.insert(key.clone(), inner);
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";
    const CONFIG_MAP: &str = "io.k8s.api.core.v1.ConfigMap";

    fn applier(manager: &str) -> Owner<'_> {
        Owner {
            manager,
            operation: Operation::Apply,
            subresource: "",
        }
    }

    fn updater(manager: &str) -> Owner<'_> {
        Owner {
            manager,
            operation: Operation::Update,
            subresource: "",
        }
    }

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
        let set = field_set(DEPLOYMENT, &deployment(&["A"], &["app"]), false);
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
        let first = field_set(
            DEPLOYMENT,
            &deployment(&["A", "B"], &["app", "tier"]),
            false,
        );
        let second = field_set(DEPLOYMENT, &deployment(&["A"], &["app"]), false);
        let mut live = deployment(&["A", "B"], &["app", "tier", "other"]);
        remove_dropped(&mut live, &first, &second, &[]);
        assert_eq!(
            live["metadata"]["labels"],
            json!({"app": "x", "other": "x"})
        );
        let env = &live["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env, &json!([{"name": "A", "value": "1"}]));

        let mut live = deployment(&["A", "B"], &["app", "tier"]);
        let other = field_set(DEPLOYMENT, &deployment(&[], &["tier"]), false);
        remove_dropped(&mut live, &first, &second, &[other]);
        assert_eq!(live["metadata"]["labels"], json!({"app": "x", "tier": "x"}));
    }

    #[test]
    fn parents_stay_when_all_their_owned_children_are_dropped() {
        let cm = |data: Value, labels: Value| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": labels}, "data": data});
        let first = field_set(
            "io.k8s.api.core.v1.ConfigMap",
            &cm(json!({"a": "1"}), json!({"x": "y"})),
            false,
        );
        let second = field_set(
            "io.k8s.api.core.v1.ConfigMap",
            &json!({"metadata": {"name": "c"}, "data": {"a": "1"}}),
            false,
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
        assert_eq!(previous(&live, &applier("kubectl")), json!({"f:a": {}}));
        assert_eq!(others(&live, &applier("kubectl")), vec![json!({"f:b": {}})]);
        record(
            &mut live,
            &applier("kubectl"),
            "v1",
            json!({"f:c": {}}),
            "2026-11-23T00:00:00Z",
        );
        let entries = live["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(previous(&live, &applier("kubectl")), json!({"f:c": {}}));
    }

    #[test]
    fn a_second_applier_conflicts_unless_it_forces() {
        let mut current = json!({"metadata": {"name": "c"}, "data": {"x": "1", "y": "2"}});
        record(
            &mut current,
            &applier("first"),
            "v1",
            json!({"f:data": {"f:x": {}, "f:y": {}}}),
            "t",
        );
        let config = json!({"data": {"x": "2"}});
        let fields = field_set("io.k8s.api.core.v1.ConfigMap", &config, false);
        let applied = json!({"metadata": {"name": "c"}, "data": {"x": "2", "y": "2"}});
        let found = conflicts(&current, &applied, &fields, &applier("second"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, ".data.x");
        assert_eq!(
            conflict_error(&found).message,
            "Apply failed with 1 conflict: conflict with \"first\": .data.x"
        );
        // The same value is no conflict.
        let same = json!({"metadata": {"name": "c"}, "data": {"x": "1", "y": "2"}});
        assert!(conflicts(&current, &same, &fields, &applier("second")).is_empty());
        // Forced: the field moves; the first applier keeps y.
        take_over(&mut current, &found);
        assert_eq!(
            previous(&current, &applier("first")),
            json!({"f:data": {"f:y": {}}})
        );
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

    #[test]
    fn updates_own_what_they_change_and_appliers_conflict_with_them() {
        let mut created = json!({"metadata": {"name": "c"}, "data": {"x": "1", "y": "2"}});
        record_update(
            &json!({}),
            &mut created,
            CONFIG_MAP,
            &updater("kubectl-create"),
            "v1",
            "t1",
            false,
        );
        assert_eq!(
            previous(&created, &updater("kubectl-create")),
            json!({"f:data": {"f:x": {}, "f:y": {}}})
        );
        // kubectl edit changes x and adds z: those move to it, y stays the creator's.
        let mut edited = json!({"metadata": {"name": "c"}, "data": {"x": "9", "y": "2", "z": "3"}});
        record_update(
            &created,
            &mut edited,
            CONFIG_MAP,
            &updater("kubectl-edit"),
            "v1",
            "t2",
            false,
        );
        assert_eq!(
            previous(&edited, &updater("kubectl-edit")),
            json!({"f:data": {"f:x": {}, "f:z": {}}})
        );
        assert_eq!(
            previous(&edited, &updater("kubectl-create")),
            json!({"f:data": {"f:y": {}}})
        );
        // Nothing changed: the entries (and their times) stay.
        let mut same = edited.clone();
        record_update(
            &edited,
            &mut same,
            CONFIG_MAP,
            &updater("other"),
            "v1",
            "t3",
            false,
        );
        assert_eq!(same, edited);
        // Removing y empties the creator's entry, which goes.
        let mut removed = json!({"metadata": {"name": "c", "managedFields": edited["metadata"]["managedFields"]}, "data": {"x": "9", "z": "3"}});
        record_update(
            &edited,
            &mut removed,
            CONFIG_MAP,
            &updater("kubectl-edit"),
            "v1",
            "t4",
            false,
        );
        let entries = removed["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{entries:?}");

        // An apply changing x conflicts with the editor, named as upstream does.
        let config = json!({"data": {"x": "1"}});
        let fields = field_set(CONFIG_MAP, &config, false);
        let applied = json!({"metadata": {"name": "c"}, "data": {"x": "1", "z": "3"}});
        let found = conflicts(&removed, &applied, &fields, &applier("kubectl"));
        assert_eq!(
            conflict_error(&found).message,
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.x"
        );
        let mut forced = removed.clone();
        take_over(&mut forced, &found);
        assert_eq!(
            previous(&forced, &updater("kubectl-edit")),
            json!({"f:data": {"f:z": {}}})
        );
    }

    #[test]
    fn keyed_items_changed_by_an_update() {
        let old = deployment(&["A"], &["app"]);
        let mut new = deployment(&["A", "B"], &["app"]);
        record_update(
            &old,
            &mut new,
            DEPLOYMENT,
            &updater("u"),
            "apps/v1",
            "t",
            false,
        );
        let set = previous(&new, &updater("u"));
        let env =
            &set["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"]["f:env"];
        assert_eq!(
            env,
            &json!({"k:{\"name\":\"B\"}": {".": {}, "f:name": {}, "f:value": {}}})
        );
    }
}
