//! scheduling.k8s.io: PriorityClasses — their table printers. Not served yet: the whole-API work adds
//! strategies here and lines in `resources.rs`.

use crate::table::prelude::*;

// ---------------------------------------------------------------- table

pub const PRIORITY_CLASS_COLUMNS: &[Column] = &[
    NAME,
    col("Value", "integer", "The value of this priority class."),
    col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority."),
    AGE,
    col("PreemptionPolicy", "string", "PreemptionPolicy is the Policy for preempting pods with lower priority."),
];

pub static PRIORITY_CLASS_PRINTER: Printer =
    Printer::new(PRIORITY_CLASS_COLUMNS, priority_class_cells);

fn priority_class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // preemptionPolicy defaults to PreemptLowerPriority.
    let preemption = non_empty_or(text(obj, &["preemptionPolicy"]), "PreemptLowerPriority");
    vec![
        name(obj),
        integer(obj, &["value"]).into(),
        boolean(obj, &["globalDefault"]).into(),
        age(obj, now).into(),
        preemption.into(),
    ]
}
