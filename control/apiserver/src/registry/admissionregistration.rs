//! admissionregistration.k8s.io: mutating and validating webhook configurations — their table
//! printers.
//! Not served yet: the whole-API work adds strategies here and lines in `resources.rs`.

use crate::table::prelude::*;

// ---------------------------------------------------------------- table

pub const WEBHOOK_CONFIGURATION_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Webhooks",
        "integer",
        "Webhooks indicates the number of webhooks registered in this configuration",
    ),
    AGE,
];

pub static WEBHOOK_CONFIGURATION_PRINTER: Printer =
    Printer::new(WEBHOOK_CONFIGURATION_COLUMNS, webhook_configuration_cells);

fn webhook_configuration_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        (list(obj, &["webhooks"]).len() as i64).into(),
        age(obj, now).into(),
    ]
}
