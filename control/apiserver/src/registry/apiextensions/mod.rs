//! apiextensions.k8s.io: the CustomResourceDefinition resource itself (upstream's
//! `registry/customresourcedefinition/strategy.go` and `etcd.go`). Its validation is
//! `validation.rs`; what a CRD makes the server serve is `customresource/`.
//!
//! - create: the status starts empty except `storedVersions`, the storage version (the
//!   conditions and accepted names are the CRD controller's to set); generation 1.
//! - update: a new storage version is appended to `storedVersions`; group and plural are
//!   immutable.
//! - delete: the first DELETE only marks the CRD — deletionTimestamp, the
//!   `customresourcecleanup.apiextensions.k8s.io` finalizer and the Terminating condition — and
//!   the controller deletes every custom object before it lifts the finalizer (upstream's
//!   `REST.Delete`).

pub mod validation;

use crate::error::FieldError;
use crate::registry::{DeletePlan, Strategy};
use crate::timestamps;

pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

pub struct CustomResourceDefinitions;

pub static CUSTOM_RESOURCE_DEFINITIONS: CustomResourceDefinitions = CustomResourceDefinitions;

/// The name of the version marked `storage: true`.
pub fn storage_version(crd: &Value) -> Option<&str> {
    crd.pointer("/spec/versions")?
        .as_array()?
        .iter()
        .find(|v| v["storage"].as_bool().unwrap_or(false))?["name"]
        .as_str()
}

/// Sets (or replaces) the condition of `type_` in `status.conditions`; the transition time
/// moves only when the status does, as upstream's `SetCRDCondition`.
pub fn set_condition(crd: &mut Value, type_: &str, status: &str, reason: &str, message: &str) {
    if !crd["status"].is_object() {
        crd["status"] = json!({});
    }
    if !crd["status"]["conditions"].is_array() {
        crd["status"]["conditions"] = json!([]);
    }
    let conditions = crd["status"]["conditions"]
        .as_array_mut()
        .expect("made an array above");
    let now = timestamps::now_rfc3339();
    match conditions.iter_mut().find(|c| c["type"] == type_) {
        Some(c) => {
            if c["status"] != status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        None => conditions.push(json!({
            "type": type_, "status": status, "lastTransitionTime": now,
            "reason": reason, "message": message,
        })),
    }
}

/// The condition of `type_`, if set.
pub fn condition<'a>(crd: &'a Value, type_: &str) -> Option<&'a Value> {
    crd.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

pub fn is_true(crd: &Value, type_: &str) -> bool {
    condition(crd, type_).is_some_and(|c| c["status"] == "True")
}

/// JSONSchemaProps' plain Go booleans, `omitempty` in Go's JSON: a false one is not kept (Go's
/// protobuf writes them even when false, and a JSON body may spell them out). The pointer
/// `x-kubernetes-preserve-unknown-fields` keeps an explicit false, as upstream's does.
const OMITTED_WHEN_FALSE: &[&str] = &[
    "exclusiveMaximum",
    "exclusiveMinimum",
    "uniqueItems",
    "nullable",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
];

/// Removes the false [`OMITTED_WHEN_FALSE`] flags from `schema` and every schema inside it.
fn drop_false_flags(schema: &mut Value, depth: usize) {
    // Deeper schemas than this are refused by validation anyway.
    if depth > 64 {
        return;
    }
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    for key in OMITTED_WHEN_FALSE {
        if object.get(*key) == Some(&Value::Bool(false)) {
            object.remove(*key);
        }
    }
    for key in [
        "properties",
        "patternProperties",
        "definitions",
        "dependencies",
    ] {
        if let Some(map) = object.get_mut(key).and_then(Value::as_object_mut) {
            for child in map.values_mut() {
                drop_false_flags(child, depth + 1);
            }
        }
    }
    for key in ["allOf", "oneOf", "anyOf", "items"] {
        match object.get_mut(key) {
            Some(Value::Array(list)) => {
                list.iter_mut().for_each(|c| drop_false_flags(c, depth + 1))
            }
            Some(child) => drop_false_flags(child, depth + 1),
            None => {}
        }
    }
    for key in ["not", "additionalProperties", "additionalItems"] {
        if let Some(child) = object.get_mut(key) {
            drop_false_flags(child, depth + 1);
        }
    }
}

impl Strategy for CustomResourceDefinitions {
    fn tracks_generation(&self) -> bool {
        true
    }

    /// Upstream's v1 defaults (`apis/apiextensions/v1/defaults.go`).
    fn default(&self, crd: &mut Value) {
        let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
            let kind = names
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let singular_empty = names
                .get("singular")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            if singular_empty {
                names.insert("singular".into(), json!(kind.to_lowercase()));
            }
            let list_kind_empty = names
                .get("listKind")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            if list_kind_empty && !kind.is_empty() {
                names.insert("listKind".into(), json!(format!("{kind}List")));
            }
        }
        if let Some(versions) = spec.get_mut("versions").and_then(Value::as_array_mut) {
            for version in versions {
                if let Some(schema) = version.pointer_mut("/schema/openAPIV3Schema") {
                    drop_false_flags(schema, 0);
                }
            }
        }
        let conversion = spec.entry("conversion").or_insert_with(|| json!({}));
        if conversion.get("strategy").is_none() {
            conversion["strategy"] = json!("None");
        }
        if conversion["strategy"] == "Webhook" {
            if let Some(webhook) = conversion.get_mut("webhook").and_then(Value::as_object_mut) {
                if webhook.get("conversionReviewVersions").is_none() {
                    webhook.insert("conversionReviewVersions".into(), json!(["v1beta1"]));
                }
                if let Some(service) = webhook
                    .get_mut("clientConfig")
                    .and_then(|c| c.get_mut("service"))
                    .and_then(Value::as_object_mut)
                {
                    service.entry("port").or_insert(json!(443));
                }
            }
        }
    }

    fn prepare_for_create(&self, crd: &mut Value, _uid: &str) {
        let stored: Vec<Value> = storage_version(crd)
            .map(|v| vec![json!(v)])
            .unwrap_or_default();
        crd["status"] = json!({
            "conditions": [],
            "acceptedNames": {"plural": "", "kind": ""},
            "storedVersions": stored,
        });
    }

    fn prepare_for_update(&self, new: &mut Value, _old: &Value) {
        add_stored_version(new);
    }

    fn prepare_for_subresource_update(
        &self,
        _sub: crate::resources::Sub,
        new: &mut Value,
        _old: &Value,
    ) {
        add_stored_version(new);
    }

    fn validate(&self, crd: &Value, errors: &mut Vec<FieldError>) {
        validation::validate(crd, errors);
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        validation::validate_update(old, new, errors);
    }

    fn before_delete(&self, object: &Value, next: &mut Value, _grace: Option<i64>) -> DeletePlan {
        if !object["metadata"]["deletionTimestamp"].is_null() {
            return DeletePlan::Unchanged;
        }
        next["metadata"]["deletionTimestamp"] = json!(timestamps::now_rfc3339());
        next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        let mut finalizers: Vec<Value> = next["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
            finalizers.push(json!(CLEANUP_FINALIZER));
        }
        next["metadata"]["finalizers"] = json!(finalizers);
        set_condition(
            next,
            "Terminating",
            "True",
            "InstanceDeletionPending",
            "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
        );
        DeletePlan::Marked { delete_now: false }
    }

    fn printer(&self) -> &'static Printer {
        &PRINTER
    }
}

// ---------------------------------------------------------------- table

use crate::table::prelude::*;

/// Upstream 1.37's CRD table (`registry/customresourcedefinition/tableconvertor`).
const COLUMNS: &[Column] = &[
    NAME,
    col("Scope", "string", "Cluster/Namespaced"),
    col("Versions", "string", "Served versions"),
    col("Created At", "date", CREATED_DESC),
    wide("Group", "string", "API group"),
    wide("Kind", "string", "CustomResource kind"),
    wide("ShortNames", "string", "Short names"),
    wide("Established", "boolean", "Established status"),
];

fn cells(crd: &Value, _now: Timestamp) -> Vec<Value> {
    let mut versions: Vec<String> = list(crd, &["spec", "versions"])
        .iter()
        .filter(|v| boolean(v, &["served"]))
        .map(|v| {
            let name = text(v, &["name"]).to_string();
            if boolean(v, &["storage"]) {
                format!("{name}(storage)")
            } else {
                name
            }
        })
        .collect();
    versions.sort();
    let created = timestamp(crd, &["metadata", "creationTimestamp"])
        .map(|ts| {
            Timestamp::from_second(ts.as_second())
                .unwrap_or(ts)
                .to_string()
        })
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    let short: Vec<&str> = list(crd, &["spec", "names", "shortNames"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    vec![
        name(crd),
        json!(text(crd, &["spec", "scope"])),
        json!(versions.join(",")),
        json!(created),
        json!(text(crd, &["spec", "group"])),
        json!(text(crd, &["spec", "names", "kind"])),
        json!(short.join(",")),
        json!(is_true(crd, "Established")),
    ]
}

pub static PRINTER: Printer = Printer::new(COLUMNS, cells);

/// A new storage version joins `status.storedVersions` (upstream's PrepareForUpdate).
fn add_stored_version(crd: &mut Value) {
    let Some(storage) = storage_version(crd).map(str::to_string) else {
        return;
    };
    if !crd["status"].is_object() {
        crd["status"] = json!({});
    }
    let stored = &mut crd["status"]["storedVersions"];
    if !stored.is_array() {
        *stored = json!([]);
    }
    let list = stored.as_array_mut().expect("made an array above");
    if !list.iter().any(|v| *v == storage.as_str()) {
        list.push(json!(storage));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_update_delete() {
        let mut crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "names": {"plural": "widgets", "kind": "Widget"}, "versions": [{"name": "v1", "storage": true}]}});
        CUSTOM_RESOURCE_DEFINITIONS.default(&mut crd);
        assert_eq!(crd["spec"]["names"]["singular"], "widget");
        assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(crd["spec"]["conversion"]["strategy"], "None");
        CUSTOM_RESOURCE_DEFINITIONS.prepare_for_create(&mut crd, "u");
        assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
        crd["spec"]["versions"] =
            json!([{"name": "v1", "storage": false}, {"name": "v2", "storage": true}]);
        let old = crd.clone();
        CUSTOM_RESOURCE_DEFINITIONS.prepare_for_update(&mut crd, &old);
        assert_eq!(crd["status"]["storedVersions"], json!(["v1", "v2"]));
        let mut next = crd.clone();
        assert_eq!(
            CUSTOM_RESOURCE_DEFINITIONS.before_delete(&crd, &mut next, None),
            DeletePlan::Marked { delete_now: false }
        );
        assert_eq!(next["metadata"]["finalizers"], json!([CLEANUP_FINALIZER]));
        assert_eq!(
            condition(&next, "Terminating").unwrap()["reason"],
            "InstanceDeletionPending"
        );
    }
}
