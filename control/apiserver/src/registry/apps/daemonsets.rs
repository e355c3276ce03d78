//! DaemonSets (`pkg/registry/apps/daemonset`): RollingUpdate (maxUnavailable 1) by default,
//! workload validation, an immutable selector; the printer.

use crate::error::FieldError;
use crate::registry::apps::{validate_selector_update, validate_workload};
use crate::registry::core::podspec::default_template;
use crate::registry::fields::{child, default};
use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct DaemonSets;

pub static STRATEGY: DaemonSets = DaemonSets;

impl Strategy for DaemonSets {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, object: &mut Value) {
        let Some(root) = object.as_object_mut() else {
            return;
        };
        let spec = child(root, "spec");
        default(spec, "revisionHistoryLimit", json!(10));
        let strategy = child(spec, "updateStrategy");
        default(strategy, "type", json!("RollingUpdate"));
        if strategy["type"] == "RollingUpdate" {
            let ru = child(strategy, "rollingUpdate");
            default(ru, "maxUnavailable", json!(1));
            default(ru, "maxSurge", json!(0));
        }
        default_template(spec);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_workload(&object["spec"], errors);
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        validate_selector_update(old, new, errors);
    }

    fn printer(&self) -> &'static Printer {
        &DAEMON_SET_PRINTER
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
