//! apiregistration.k8s.io: APIServices — their table printers.
//! Not served yet: the whole-API work adds strategies here and lines in `resources.rs`.

use crate::table::prelude::*;

// ---------------------------------------------------------------- table

pub const API_SERVICE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Service",
        "string",
        "The reference to the service that hosts this API endpoint.",
    ),
    col("Available", "string", "Whether this service is available."),
    AGE,
];

pub static API_SERVICE_PRINTER: Printer = Printer::new(API_SERVICE_COLUMNS, api_service_cells);

fn api_service_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let service = match field(obj, &["spec", "service"]).filter(|s| !s.is_null()) {
        Some(s) => format!("{}/{}", text(s, &["namespace"]), text(s, &["name"])),
        None => "Local".to_string(),
    };
    let available = match list(obj, &["status", "conditions"])
        .iter()
        .find(|c| text(c, &["type"]) == "Available")
    {
        None => "Unknown".to_string(),
        Some(c) => {
            let status = text(c, &["status"]);
            let reason = text(c, &["reason"]);
            if status == "True" || reason.is_empty() {
                status.to_string()
            } else {
                format!("{status} ({reason})")
            }
        }
    };
    vec![
        name(obj),
        service.into(),
        available.into(),
        age(obj, now).into(),
    ]
}
