//! scheduling.k8s.io: PriorityClasses (`pkg/registry/scheduling/priorityclass`) — the value a
//! pod's `priorityClassName` resolves to (Priority admission, `registry/core/pods.rs`), with the
//! two built-in classes the API server creates at start (`SYSTEM_CLASSES`); validation as
//! upstream's (the `system-` prefix reserved, user values at most one billion, value and
//! preemptionPolicy immutable); the printer.

use crate::error::FieldError;
use crate::registry::fields::{default, immutable};
use crate::registry::Strategy;
use crate::table::prelude::*;

/// The built-in classes: (name, value, description).
pub const SYSTEM_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// The highest value a user-defined class may have (`HighestUserDefinablePriority`).
pub const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

pub struct PriorityClasses;

pub static PRIORITY_CLASSES: PriorityClasses = PriorityClasses;

impl Strategy for PriorityClasses {
    fn default(&self, object: &mut Value) {
        if let Some(root) = object.as_object_mut() {
            // `value` is a plain int32 upstream: absent reads as 0.
            default(root, "value", json!(0));
            default(root, "preemptionPolicy", json!("PreemptLowerPriority"));
        }
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let value = object.get("value").and_then(Value::as_i64);
        match SYSTEM_CLASSES.iter().find(|(n, ..)| *n == name) {
            Some((_, v, _)) if value != Some(*v) => errors.push(FieldError::forbidden(
                "metadata.name",
                format!("{name} is a reserved name; its value must be {v}"),
            )),
            Some(_) => {}
            None if name.starts_with("system-") => errors.push(FieldError::forbidden(
                "metadata.name",
                "priority class names with 'system-' prefix are reserved",
            )),
            None => {}
        }
        match value {
            None => errors.push(FieldError::required("value", "")),
            Some(v) if v > HIGHEST_USER_PRIORITY && !name.starts_with("system-") => {
                errors.push(FieldError::forbidden(
                    "value",
                    format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
                ))
            }
            Some(_) => {}
        }
        crate::registry::fields::check_enum(
            "preemptionPolicy",
            object.get("preemptionPolicy"),
            &["PreemptLowerPriority", "Never"],
            errors,
        );
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        if old.get("value") != new.get("value") {
            errors.push(FieldError::forbidden(
                "value",
                "may not be changed in an update.",
            ));
        }
        immutable(
            "preemptionPolicy",
            old.get("preemptionPolicy"),
            new.get("preemptionPolicy"),
            errors,
        );
    }

    fn printer(&self) -> &'static Printer {
        &PRIORITY_CLASS_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const PRIORITY_CLASS_COLUMNS: &[Column] = &[
    NAME,
    col("Value", "integer", "The value of this priority class."),
    col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority."),
    AGE,
    col("PreemptionPolicy", "string", "PreemptionPolicy is the Policy for preempting pods with lower priority."),
];

pub static PRIORITY_CLASS_PRINTER: Printer =
    Printer::new(PRIORITY_CLASS_COLUMNS, priority_class_cells);

fn priority_class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // preemptionPolicy defaults to PreemptLowerPriority.
    let preemption = non_empty_or(text(obj, &["preemptionPolicy"]), "PreemptLowerPriority");
    vec![
        name(obj),
        integer(obj, &["value"]).into(),
        boolean(obj, &["globalDefault"]).into(),
        age(obj, now).into(),
        preemption.into(),
    ]
}
