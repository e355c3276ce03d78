//! StatefulSets (`pkg/registry/apps/statefulset`): defaults (OrderedReady, RollingUpdate with
//! partition 0, PVC retention Retain), workload validation, an immutable selector; the printer.

use crate::error::FieldError;
use crate::registry::apps::{validate_selector_update, validate_workload};
use crate::registry::core::podspec::default_template;
use crate::registry::fields::{child, default};
use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct StatefulSets;

pub static STRATEGY: StatefulSets = StatefulSets;

impl Strategy for StatefulSets {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, object: &mut Value) {
        let Some(root) = object.as_object_mut() else {
            return;
        };
        let spec = child(root, "spec");
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
        default_template(spec);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_workload(&object["spec"], errors);
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        validate_selector_update(old, new, errors);
    }

    fn printer(&self) -> &'static Printer {
        &STATEFUL_SET_PRINTER
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
