//! node.k8s.io: RuntimeClasses — their table printers. Not served yet: the whole-API work adds
//! strategies here and lines in `resources.rs`.

use crate::table::prelude::*;

// ---------------------------------------------------------------- table

pub const RUNTIME_CLASS_COLUMNS: &[Column] = &[
    NAME,
    col("Handler", "string", "Handler specifies the underlying runtime and configuration that the CRI implementation will use."),
    AGE,
];

pub static RUNTIME_CLASS_PRINTER: Printer =
    Printer::new(RUNTIME_CLASS_COLUMNS, runtime_class_cells);

fn runtime_class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        text(obj, &["handler"]).into(),
        age(obj, now).into(),
    ]
}
