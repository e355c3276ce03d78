//! node.k8s.io: RuntimeClasses (`pkg/registry/node/runtimeclass`) — a required DNS-1123 label
//! handler that never changes; the printer.

use crate::error::FieldError;
use crate::names::{is_dns1123_label, DNS1123_LABEL_MSG};
use crate::registry::fields::immutable;
use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct RuntimeClasses;

pub static RUNTIME_CLASSES: RuntimeClasses = RuntimeClasses;

impl Strategy for RuntimeClasses {
    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        match object.get("handler") {
            None | Some(Value::Null) => errors.push(FieldError::required("handler", "")),
            Some(h) if !h.as_str().is_some_and(is_dns1123_label) => {
                errors.push(FieldError::invalid("handler", h, DNS1123_LABEL_MSG))
            }
            Some(_) => {}
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        immutable("handler", old.get("handler"), new.get("handler"), errors);
    }

    fn printer(&self) -> &'static Printer {
        &RUNTIME_CLASS_PRINTER
    }
}

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
