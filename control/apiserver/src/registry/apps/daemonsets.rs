//! DaemonSets (`pkg/registry/apps/daemonset`): RollingUpdate (maxUnavailable 1) by default,
//! workload validation, an immutable selector; the printer.

use crate::registry::apps::{no_rules, Workload};
use crate::registry::fields::{child, default};
use crate::table::prelude::*;

pub static STRATEGY: Workload = Workload {
    spec_defaults,
    validate_spec: no_rules,
    selectable: &[],
    printer: &DAEMON_SET_PRINTER,
};

fn spec_defaults(spec: &mut Map<String, Value>) {
    default(spec, "revisionHistoryLimit", json!(10));
    let strategy = child(spec, "updateStrategy");
    default(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        let ru = child(strategy, "rollingUpdate");
        default(ru, "maxUnavailable", json!(1));
        default(ru, "maxSurge", json!(0));
    }
}

// ---------------------------------------------------------------- table

pub const DAEMON_SET_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Desired",
        "integer",
        "The total number of nodes that should be running the daemon pod.",
    ),
    col(
        "Current",
        "integer",
        "The number of nodes that are running at least one daemon pod.",
    ),
    col(
        "Ready",
        "integer",
        "The number of nodes that should be running the daemon pod and have it ready.",
    ),
    col(
        "Up-to-date",
        "integer",
        "The total number of nodes that are running the updated daemon pod.",
    ),
    col(
        "Available",
        "integer",
        "The number of nodes that should be running the daemon pod and have it available.",
    ),
    col(
        "Node Selector",
        "string",
        "NodeSelector is a selector which must be true for the pod to fit on a node.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub static DAEMON_SET_PRINTER: Printer = Printer::new(DAEMON_SET_COLUMNS, daemon_set_cells);

fn daemon_set_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(list(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        integer(obj, &["status", "desiredNumberScheduled"]).into(),
        integer(obj, &["status", "currentNumberScheduled"]).into(),
        integer(obj, &["status", "numberReady"]).into(),
        integer(obj, &["status", "updatedNumberScheduled"]).into(),
        integer(obj, &["status", "numberAvailable"]).into(),
        format_labels(field(obj, &["spec", "template", "spec", "nodeSelector"])).into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        format_label_selector(field(obj, &["spec", "selector"])).into(),
    ]
}
