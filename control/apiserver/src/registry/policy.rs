//! policy: PodDisruptionBudgets (`pkg/registry/policy/poddisruptionbudget`) — generation
//! tracking and the printer.

use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct PodDisruptionBudgets;

pub static POD_DISRUPTION_BUDGETS: PodDisruptionBudgets = PodDisruptionBudgets;

impl Strategy for PodDisruptionBudgets {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn printer(&self) -> &'static Printer {
        &POD_DISRUPTION_BUDGET_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const POD_DISRUPTION_BUDGET_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Min Available",
        "string",
        "The minimum number of pods that must be available.",
    ),
    col(
        "Max Unavailable",
        "string",
        "The maximum number of pods that may be unavailable.",
    ),
    col(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
];

pub static POD_DISRUPTION_BUDGET_PRINTER: Printer =
    Printer::new(POD_DISRUPTION_BUDGET_COLUMNS, pod_disruption_budget_cells);

fn pod_disruption_budget_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let min_available =
        int_or_string(field(obj, &["spec", "minAvailable"])).unwrap_or_else(|| "N/A".to_string());
    let max_unavailable =
        int_or_string(field(obj, &["spec", "maxUnavailable"])).unwrap_or_else(|| "N/A".to_string());
    vec![
        name(obj),
        min_available.into(),
        max_unavailable.into(),
        integer(obj, &["status", "disruptionsAllowed"]).into(),
        age(obj, now).into(),
    ]
}
