//! ResourceQuotas (`pkg/registry/core/resourcequota`): the printer.

use crate::registry::Printed;
use crate::table::prelude::*;

pub static STRATEGY: Printed = Printed(&RESOURCE_QUOTA_PRINTER);

// ---------------------------------------------------------------- table

pub const RESOURCE_QUOTA_COLUMNS: &[Column] = &[
    NAME,
    AGE,
    col("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
    col("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
];

pub static RESOURCE_QUOTA_PRINTER: Printer =
    Printer::new(RESOURCE_QUOTA_COLUMNS, resource_quota_cells);

fn resource_quota_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let mut resources: Vec<&String> = field(obj, &["status", "hard"])
        .and_then(Value::as_object)
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    resources.sort();
    let mut requests: Vec<String> = Vec::new();
    let mut limits: Vec<String> = Vec::new();
    for resource in resources {
        let used = quantity(field(obj, &["status", "used", resource.as_str()]));
        let hard = quantity(field(obj, &["status", "hard", resource.as_str()]));
        let entry = format!("{resource}: {used}/{hard}");
        // "limits.cpu" and the like go to the Limit column, everything else to Request.
        if resource.split('.').count() > 1 && resource.starts_with("limits.") {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    vec![
        name(obj),
        age(obj, now).into(),
        requests.join(", ").into(),
        limits.join(", ").into(),
    ]
}
