//! storagemigration.k8s.io: StorageVersionMigrations (`pkg/registry/storagemigration`) — a
//! request to rewrite every object of one resource in the current storage version; the spec
//! never changes after create, the status is the migrator's.
//!
//! skiff stores every resource in the one version it serves, so nothing needs rewriting yet and
//! no migration controller runs: a migration stays without conditions (`kubectl get` shows
//! `Unknown`, as upstream before its controller picks it up). Served so that upstream's
//! controller manager, whose informers list it, starts against skiff.

use serde_json::json;

use crate::error::FieldError;
use crate::names::{
    is_dns1035_label, is_dns1123_subdomain, DNS1035_LABEL_MSG, DNS1123_SUBDOMAIN_MSG,
};
use crate::registry::fields::immutable;
use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct StorageVersionMigrations;

pub static STORAGE_VERSION_MIGRATIONS: StorageVersionMigrations = StorageVersionMigrations;

impl Strategy for StorageVersionMigrations {
    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let field = |name: &str| {
            object
                .pointer(&format!("/spec/resource/{name}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
        };
        match field("resource") {
            "" => errors.push(FieldError::required(
                "spec.resource.resource",
                "resource is required to be set",
            )),
            r if !is_dns1035_label(r) => errors.push(FieldError::invalid(
                "spec.resource.resource",
                &json!(r),
                DNS1035_LABEL_MSG,
            )),
            _ => {}
        }
        let group = field("group");
        if !group.is_empty() && !is_dns1123_subdomain(group) {
            errors.push(FieldError::invalid(
                "spec.resource.group",
                &json!(group),
                DNS1123_SUBDOMAIN_MSG,
            ));
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        immutable("spec", old.get("spec"), new.get("spec"), errors);
    }

    fn printer(&self) -> &'static Printer {
        &STORAGE_VERSION_MIGRATION_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const STORAGE_VERSION_MIGRATION_COLUMNS: &[Column] = &[
    col("Name", "string", "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"),
    col("Resource", "string", "GroupResource to migrate"),
    col("Status", "string", "Status of the migration"),
];

pub static STORAGE_VERSION_MIGRATION_PRINTER: Printer = Printer::new(
    STORAGE_VERSION_MIGRATION_COLUMNS,
    storage_version_migration_cells,
);

/// `resource.group`, and the first true one of Running/Failed/Succeeded (else Unknown).
fn storage_version_migration_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let resource = text(obj, &["spec", "resource", "resource"]);
    let group = text(obj, &["spec", "resource", "group"]);
    let gr = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let mut status = "Unknown".to_string();
    for c in list(obj, &["status", "conditions"]) {
        let kind = c["type"].as_str().unwrap_or_default();
        if c["status"] == "True" && matches!(kind, "Running" | "Failed" | "Succeeded") {
            status = kind.to_string();
        }
    }
    vec![name(obj), gr.into(), status.into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_names_the_group_resource_and_the_true_condition() {
        let obj = json!({"metadata": {"name": "m"}, "spec": {"resource": {"group": "apps", "resource": "deployments"}},
                         "status": {"conditions": [{"type": "Running", "status": "False"}, {"type": "Succeeded", "status": "True"}]}});
        let cells = storage_version_migration_cells(&obj, Timestamp::now());
        assert_eq!(
            cells,
            vec![json!("m"), json!("deployments.apps"), json!("Succeeded")]
        );
        let mut errors = Vec::new();
        STORAGE_VERSION_MIGRATIONS.validate(
            &json!({"spec": {"resource": {"resource": "Bad_Name"}}}),
            &mut errors,
        );
        assert_eq!(errors.len(), 1);
    }
}
