//! Namespaces (`pkg/registry/core/namespace`): the `kubernetes` finalizer and Active phase by
//! default, the `kubernetes.io/metadata.name` label, names as DNS-1123 labels, spec.finalizers
//! changed only through `/finalize`, and deletion as a two-step: DELETE marks the namespace
//! Terminating, the namespace controller empties it and removes its finalizers, and the last
//! update removes it.

use crate::registry::fields::{child, default};
use crate::registry::{DeletePlan, Strategy};
use crate::table::prelude::*;
use crate::{names, timestamps};

pub struct Namespaces;

pub static STRATEGY: Namespaces = Namespaces;

impl Strategy for Namespaces {
    fn name_rule(&self) -> names::NameRule {
        names::LABEL
    }

    fn keeps_status_on_create(&self) -> bool {
        true
    }

    fn default(&self, object: &mut Value) {
        let Some(root) = object.as_object_mut() else {
            return;
        };
        let spec = child(root, "spec");
        default(spec, "finalizers", json!(["kubernetes"]));
        let status = child(root, "status");
        default(status, "phase", json!("Active"));
    }

    fn prepare_for_create(&self, object: &mut Value, _uid: &str) {
        let Some(root) = object.as_object_mut() else {
            return;
        };
        let name = root
            .get("metadata")
            .and_then(|m| m.get("name"))
            .cloned()
            .unwrap_or(Value::Null);
        let meta = child(root, "metadata");
        let labels = child(meta, "labels");
        labels.insert("kubernetes.io/metadata.name".into(), name);
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        // spec.finalizers change only through /finalize.
        new["spec"] = old["spec"].clone();
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["status.phase"]
    }

    fn printer(&self) -> &'static Printer {
        &NAMESPACE_PRINTER
    }

    /// Marks the namespace Terminating; the namespace controller empties and finalizes it. One
    /// with nothing to wait for goes at once.
    fn before_delete(&self, object: &Value, next: &mut Value, _grace: Option<i64>) -> DeletePlan {
        if !object["metadata"]["deletionTimestamp"].is_null() {
            return DeletePlan::Unchanged;
        }
        next["metadata"]["deletionTimestamp"] = json!(timestamps::now_rfc3339());
        next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        next["status"]["phase"] = json!("Terminating");
        let finalizers = next["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        DeletePlan::Marked {
            delete_now: !self.blocks_deletion(next) && !finalizers,
        }
    }

    fn blocks_deletion(&self, object: &Value) -> bool {
        object["spec"]["finalizers"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    }

    fn delete_returns_object(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------- table

pub const NAMESPACE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

pub static NAMESPACE_PRINTER: Printer = Printer::new(NAMESPACE_COLUMNS, namespace_cells);

fn namespace_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // Upstream sets the phase to Active on create; a missing phase means the same.
    let phase = non_empty_or(text(obj, &["status", "phase"]), "Active");
    vec![name(obj), phase.into(), age(obj, now).into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_marks_terminating_then_waits_for_finalizers() {
        let mut ns = json!({"metadata": {"name": "blue"}});
        STRATEGY.default(&mut ns);
        let mut next = ns.clone();
        assert_eq!(
            STRATEGY.before_delete(&ns, &mut next, None),
            DeletePlan::Marked { delete_now: false }
        );
        assert_eq!(next["status"]["phase"], "Terminating");
        assert!(next["metadata"]["deletionTimestamp"].is_string());
        // Already terminating: a second delete changes nothing.
        assert_eq!(
            STRATEGY.before_delete(&next, &mut next.clone(), None),
            DeletePlan::Unchanged
        );
        // Without spec finalizers nothing holds it.
        let bare = json!({"metadata": {"name": "x"}, "spec": {"finalizers": []}});
        assert_eq!(
            STRATEGY.before_delete(&bare, &mut bare.clone(), None),
            DeletePlan::Marked { delete_now: true }
        );
    }
}
