//! PodTemplates (`pkg/registry/core/podtemplate`): the pod template's defaults and validation;
//! the printer.

use crate::error::FieldError;
use crate::registry::core::podspec::{default_template, validate_pod_spec};
use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct PodTemplates;

pub static STRATEGY: PodTemplates = PodTemplates;

impl Strategy for PodTemplates {
    fn default(&self, object: &mut Value) {
        if let Some(root) = object.as_object_mut() {
            default_template(root);
        }
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_pod_spec("template.spec", &object["template"]["spec"], errors);
    }

    fn printer(&self) -> &'static Printer {
        &POD_TEMPLATE_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const POD_TEMPLATE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Containers",
        "string",
        "Names of each container in the template.",
    ),
    col(
        "Images",
        "string",
        "Images referenced by each container in the template.",
    ),
    col("Pod Labels", "string", "The labels for the pod template."),
];

pub static POD_TEMPLATE_PRINTER: Printer = Printer::new(POD_TEMPLATE_COLUMNS, pod_template_cells);

fn pod_template_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let (names, images) = container_cells(list(obj, &["template", "spec", "containers"]));
    vec![
        name(obj),
        names.into(),
        images.into(),
        format_labels(field(obj, &["template", "metadata", "labels"])).into(),
    ]
}
