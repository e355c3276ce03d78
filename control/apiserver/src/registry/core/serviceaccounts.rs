//! ServiceAccounts (`pkg/registry/core/serviceaccount`): the printer.

use crate::registry::Printed;
use crate::table::prelude::*;

pub static STRATEGY: Printed = Printed(&SERVICE_ACCOUNT_PRINTER);

// ---------------------------------------------------------------- table

pub const SERVICE_ACCOUNT_COLUMNS: &[Column] = &[
    NAME,
    col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    AGE,
];

pub static SERVICE_ACCOUNT_PRINTER: Printer =
    Printer::new(SERVICE_ACCOUNT_COLUMNS, service_account_cells);

fn service_account_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        (list(obj, &["secrets"]).len() as i64).into(),
        age(obj, now).into(),
    ]
}
