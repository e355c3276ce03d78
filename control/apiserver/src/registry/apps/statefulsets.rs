//! StatefulSets (`pkg/registry/apps/statefulset`): defaults (OrderedReady, RollingUpdate with
//! partition 0, PVC retention Retain), workload validation, an immutable selector; the printer.

use crate::registry::apps::{no_rules, Workload};
use crate::registry::fields::{child, default};
use crate::table::prelude::*;

pub static STRATEGY: Workload = Workload {
    spec_defaults,
    validate_spec: no_rules,
    selectable: &[],
    printer: &STATEFUL_SET_PRINTER,
};

fn spec_defaults(spec: &mut Map<String, Value>) {
    default(spec, "replicas", json!(1));
    default(spec, "podManagementPolicy", json!("OrderedReady"));
    default(spec, "revisionHistoryLimit", json!(10));
    default(
        spec,
        "persistentVolumeClaimRetentionPolicy",
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
    );
    let strategy = child(spec, "updateStrategy");
    default(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        let ru = child(strategy, "rollingUpdate");
        default(ru, "partition", json!(0));
    }
}

// ---------------------------------------------------------------- table

pub const STATEFUL_SET_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

pub static STATEFUL_SET_PRINTER: Printer = Printer::new(STATEFUL_SET_COLUMNS, stateful_set_cells);

fn stateful_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(list(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        format!(
            "{}/{}",
            integer(obj, &["status", "readyReplicas"]),
            replicas(obj)
        )
        .into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
    ]
}
