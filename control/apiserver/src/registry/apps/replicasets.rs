//! ReplicaSets (`pkg/registry/apps/replicaset`): one replica by default, workload validation, an
//! immutable selector, field selectors on status.replicas; the printer (whose columns
//! ReplicationControllers share).

use crate::error::FieldError;
use crate::registry::apps::{validate_selector_update, validate_workload};
use crate::registry::core::podspec::default_template;
use crate::registry::fields::{child, default};
use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct ReplicaSets;

pub static STRATEGY: ReplicaSets = ReplicaSets;

impl Strategy for ReplicaSets {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, object: &mut Value) {
        let Some(root) = object.as_object_mut() else {
            return;
        };
        let spec = child(root, "spec");
        default(spec, "replicas", json!(1));
        default_template(spec);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_workload(&object["spec"], errors);
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        validate_selector_update(old, new, errors);
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["status.replicas"]
    }

    fn printer(&self) -> &'static Printer {
        &REPLICA_SET_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const REPLICA_SET_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        "Replicas is the number of desired replicas.",
    ),
    col(
        "Current",
        "integer",
        "Replicas is the most recently observed number of replicas.",
    ),
    col(
        "Ready",
        "integer",
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub static REPLICA_SET_PRINTER: Printer = Printer::new(REPLICA_SET_COLUMNS, replica_set_cells);

fn replica_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(list(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        replicas(obj).into(),
        integer(obj, &["status", "replicas"]).into(),
        integer(obj, &["status", "readyReplicas"]).into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        format_label_selector(field(obj, &["spec", "selector"])).into(),
    ]
}
