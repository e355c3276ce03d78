//! ReplicaSets (`pkg/registry/apps/replicaset`): one replica by default, workload validation, an
//! immutable selector, field selectors on status.replicas; the printer (whose columns
//! ReplicationControllers share).

use crate::registry::apps::{no_rules, Workload};
use crate::registry::fields::default;
use crate::table::prelude::*;

pub static STRATEGY: Workload = Workload {
    spec_defaults,
    validate_spec: no_rules,
    selectable: &["status.replicas"],
    printer: &REPLICA_SET_PRINTER,
};

fn spec_defaults(spec: &mut Map<String, Value>) {
    default(spec, "replicas", json!(1));
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
