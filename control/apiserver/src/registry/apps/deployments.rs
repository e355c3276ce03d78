//! Deployments (`pkg/registry/apps/deployment`): defaults (one replica, RollingUpdate 25%/25%,
//! history and progress deadline), workload validation and the strategy type, an immutable
//! selector; the printer.

use crate::error::FieldError;
use crate::registry::apps::Workload;
use crate::registry::fields::{check_enum, child, default};
use crate::table::prelude::*;

pub static STRATEGY: Workload = Workload {
    spec_defaults,
    validate_spec,
    selectable: &[],
    printer: &DEPLOYMENT_PRINTER,
};

/// One replica, RollingUpdate 25%/25%, history and progress deadline.
fn spec_defaults(spec: &mut Map<String, Value>) {
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
}

fn validate_spec(spec: &Value, errors: &mut Vec<FieldError>) {
    check_enum(
        "spec.strategy.type",
        spec.pointer("/strategy/type"),
        &["Recreate", "RollingUpdate"],
        errors,
    );
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
    use crate::registry::Strategy;

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
