//! coordination.k8s.io: Leases (`pkg/registry/coordination/lease`) — the printer.

use crate::registry::Printed;
use crate::table::prelude::*;

pub static LEASES: Printed = Printed(&LEASE_PRINTER);

// ---------------------------------------------------------------- table

pub const LEASE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];

pub static LEASE_PRINTER: Printer = Printer::new(LEASE_COLUMNS, lease_cells);

fn lease_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        text(obj, &["spec", "holderIdentity"]).into(),
        age(obj, now).into(),
    ]
}
