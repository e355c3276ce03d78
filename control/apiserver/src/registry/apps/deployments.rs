//! Deployments (`pkg/registry/apps/deployment`): defaults (one replica, RollingUpdate 25%/25%,
//! history and progress deadline), workload validation and the strategy type, an immutable
//! selector; the printer.

use crate::error::FieldError;
use crate::registry::apps::{validate_selector_update, validate_workload};
use crate::registry::core::podspec::default_template;
use crate::registry::fields::{check_enum, child, default};
use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct Deployments;

pub static STRATEGY: Deployments = Deployments;

impl Strategy for Deployments {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn default(&self, object: &mut Value) {
        let Some(root) = object.as_object_mut() else {
            return;
        };
        let spec = child(root, "spec");
        default(spec, "replicas", json!(1));
        default(spec, "revisionHistoryLimit", json!(10));
        default(spec, "progressDeadlineSeconds", json!(600));
        let strategy = child(spec, "strategy");
        default(strategy, "type", json!("RollingUpdate"));
        if strategy["type"] == "RollingUpdate" {
            let ru = child(strategy, "rollingUpdate");
            default(ru, "maxUnavailable", json!("25%"));
            default(ru, "maxSurge", json!("25%"));
        }
        default_template(spec);
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let spec = &object["spec"];
        validate_workload(spec, errors);
        check_enum(
            "spec.strategy.type",
            spec.pointer("/strategy/type"),
            &["Recreate", "RollingUpdate"],
            errors,
        );
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        validate_selector_update(old, new, errors);
    }

    fn printer(&self) -> &'static Printer {
        &DEPLOYMENT_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "string", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    col("Available", "string", "Total number of available pods targeted by this deployment."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub static DEPLOYMENT_PRINTER: Printer = Printer::new(DEPLOYMENT_COLUMNS, deployment_cells);

fn deployment_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(list(obj, &["spec", "template", "spec", "containers"]));
    // Unlike the other workloads, an empty selector prints as "" here, and an invalid one as
    // "<invalid>".
    let selector = label_selector_string(field(obj, &["spec", "selector"]))
        .unwrap_or_else(|| "<invalid>".to_string());
    vec![
        name(obj),
        format!(
            "{}/{}",
            integer(obj, &["status", "readyReplicas"]),
            replicas(obj)
        )
        .into(),
        integer(obj, &["status", "updatedReplicas"]).into(),
        integer(obj, &["status", "availableReplicas"]).into(),
        age(obj, now).into(),
        names.into(),
        images.into(),
        selector.into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults() {
        let mut d = json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
        STRATEGY.default(&mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["template"]["spec"]["restartPolicy"], "Always");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "Always"
        );
    }
}
