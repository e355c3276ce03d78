//! ReplicationControllers (`pkg/registry/core/replicationcontroller`): field selectors and the
//! printer (ReplicaSet's columns). Not served yet — the whole-API work adds its line to
//! `resources.rs`.

use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct ReplicationControllers;

pub static STRATEGY: ReplicationControllers = ReplicationControllers;

impl Strategy for ReplicationControllers {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["status.replicas"]
    }

    fn printer(&self) -> &'static Printer {
        &REPLICATION_CONTROLLER_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub static REPLICATION_CONTROLLER_PRINTER: Printer = Printer::new(
    crate::registry::apps::replicasets::REPLICA_SET_COLUMNS,
    replication_controller_cells,
);

fn replication_controller_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(list(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        replicas(obj).into(),
        integer(obj, &["status", "replicas"]).into(),
        integer(obj, &["status", "readyReplicas"]).into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        // A replication controller's selector is a plain map, not a LabelSelector.
        format_labels(field(obj, &["spec", "selector"])).into(),
    ]
}
