//! ControllerRevisions (`pkg/registry/apps/controllerrevision`): the printer.

use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct ControllerRevisions;

pub static STRATEGY: ControllerRevisions = ControllerRevisions;

impl Strategy for ControllerRevisions {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn printer(&self) -> &'static Printer {
        &CONTROLLER_REVISION_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const CONTROLLER_REVISION_COLUMNS: &[Column] = &[
    NAME,
    col("Controller", "string", "Controller of the object"),
    col(
        "Revision",
        "string",
        "Revision indicates the revision of the state represented by Data.",
    ),
    AGE,
];

pub static CONTROLLER_REVISION_PRINTER: Printer =
    Printer::new(CONTROLLER_REVISION_COLUMNS, controller_revision_cells);

fn controller_revision_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let controller = list(obj, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| boolean(r, &["controller"]))
        .map(|owner| {
            // "apps/v1" -> group "apps"; "v1" -> core.
            let api_version = text(owner, &["apiVersion"]);
            let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
            let kind = text(owner, &["kind"]);
            let owner_name = text(owner, &["name"]);
            if group.is_empty() && kind.is_empty() {
                owner_name.to_string()
            } else if group.is_empty() {
                format!("{}/{owner_name}", kind.to_lowercase())
            } else {
                format!(
                    "{}.{}/{owner_name}",
                    kind.to_lowercase(),
                    group.to_lowercase()
                )
            }
        })
        .unwrap_or_else(|| "<none>".to_string());
    vec![
        name(obj),
        controller.into(),
        integer(obj, &["revision"]).into(),
        age(obj, now).into(),
    ]
}
