//! Events (`pkg/registry/core/event`): the field selectors kubectl and controllers use, and the
//! event printer. events.k8s.io/v1 serves the same objects (stored as core v1 under
//! `/registry/events/`, as upstream): its conversion (`pkg/apis/events/v1/conversion.go` — the
//! same fields under newer names), its field labels and its stricter validation
//! (`ValidateEventCreate/Update` for a request in events.k8s.io/v1) are here too.

use serde_json::json;

use crate::error::FieldError;
use crate::registry::{fields, Strategy};
use crate::resources::Conversion;
use crate::table::prelude::*;

pub struct Events;

pub static STRATEGY: Events = Events;

impl Strategy for Events {
    fn selectable_fields(&self) -> &'static [&'static str] {
        &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]
    }

    fn printer(&self) -> &'static Printer {
        &EVENT_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const EVENT_COLUMNS: &[Column] = &[
    col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", "Type of this event (Normal, Warning)."),
    col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", "The object that this event is about."),
    wide("Subobject", "string", "The field of the involved object this event is about."),
    wide("Source", "string", "The component reporting this event."),
    col("Message", "string", "A human-readable description of the status of this operation."),
    wide("First Seen", "string", "The time at which the event was first recorded."),
    wide("Count", "string", "The number of times this event has occurred."),
    Column { name: "Name", kind: "string", format: "name", priority: 1, description: NAME_DESC },
];

pub static EVENT_PRINTER: Printer = Printer::new(EVENT_COLUMNS, core_event_cells);

/// Where the fields upstream's event printer reads live.
struct EventFields {
    first_timestamp: &'static str,
    last_timestamp: &'static str,
    count: &'static str,
    involved_object: &'static str,
    source: &'static str,
    reporting_controller: &'static str,
    message: &'static str,
}

const CORE_EVENT_FIELDS: EventFields = EventFields {
    first_timestamp: "firstTimestamp",
    last_timestamp: "lastTimestamp",
    count: "count",
    involved_object: "involvedObject",
    source: "source",
    reporting_controller: "reportingComponent",
    message: "message",
};

fn core_event_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    event_cells(obj, now, &CORE_EVENT_FIELDS)
}

fn event_cells(obj: &Value, now: Timestamp, fields: &EventFields) -> Vec<Value> {
    // Events from the newer API have only eventTime; series replace count and lastTimestamp.
    let first_seen = match timestamp(obj, &[fields.first_timestamp]) {
        Some(first) => since(Some(first), now),
        None => since(timestamp(obj, &["eventTime"]), now),
    };
    let mut last_seen = match timestamp(obj, &[fields.last_timestamp]) {
        Some(last) => since(Some(last), now),
        None => first_seen.clone(),
    };
    let mut count = integer(obj, &[fields.count]);
    if is_set(obj, &["series"]) {
        last_seen = since(timestamp(obj, &["series", "lastObservedTime"]), now);
        count = integer(obj, &["series", "count"]);
    } else if count == 0 {
        // Singleton events have no count in the new API.
        count = 1;
    }

    let kind = text(obj, &[fields.involved_object, "kind"]).to_lowercase();
    let object_name = text(obj, &[fields.involved_object, "name"]);
    let target = if object_name.is_empty() {
        kind
    } else {
        format!("{kind}/{object_name}")
    };

    let component = non_empty_or(
        text(obj, &[fields.source, "component"]),
        text(obj, &[fields.reporting_controller]),
    );
    let host = non_empty_or(
        text(obj, &[fields.source, "host"]),
        text(obj, &["reportingInstance"]),
    );
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };

    vec![
        last_seen.into(),
        text(obj, &["type"]).into(),
        text(obj, &["reason"]).into(),
        target.into(),
        text(obj, &[fields.involved_object, "fieldPath"]).into(),
        source.into(),
        text(obj, &[fields.message]).trim().into(),
        first_seen.into(),
        count.into(),
        name(obj),
    ]
}

// ---------------------------------------------------------------- events.k8s.io/v1

/// core v1 field ↔ events.k8s.io/v1 field: the renames of upstream's conversion. Everything
/// else (eventTime, series, action, reason, related, reportingInstance, type) keeps its name.
const RENAMED: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

pub static EVENTS_V1: Conversion = Conversion {
    storage: ("", "v1", "events"),
    to_storage: events_v1_to_core,
    from_storage: core_to_events_v1,
    field_labels: &[
        ("reason", "reason"),
        ("regarding.kind", "involvedObject.kind"),
        ("regarding.namespace", "involvedObject.namespace"),
        ("regarding.name", "involvedObject.name"),
        ("regarding.uid", "involvedObject.uid"),
        ("regarding.apiVersion", "involvedObject.apiVersion"),
        (
            "regarding.resourceVersion",
            "involvedObject.resourceVersion",
        ),
        ("regarding.fieldPath", "involvedObject.fieldPath"),
        ("reportingController", "reportingComponent"),
        ("type", "type"),
        ("metadata.namespace", "metadata.namespace"),
        ("metadata.name", "metadata.name"),
    ],
};

fn rename(event: &mut Value, api_version: &str, from_new: bool) {
    let Some(o) = event.as_object_mut() else {
        return;
    };
    o.insert("apiVersion".into(), json!(api_version));
    let mut moved = Vec::new();
    for (core, new) in RENAMED {
        let (from, to) = if from_new { (new, core) } else { (core, new) };
        if let Some(v) = o.remove(*from) {
            moved.push((*to, v));
        }
    }
    for (to, v) in moved {
        o.insert(to.to_string(), v);
    }
}

fn events_v1_to_core(event: &mut Value) {
    rename(event, "v1", true);
}

fn core_to_events_v1(event: &mut Value) {
    rename(event, "events.k8s.io/v1", false);
}

/// events.k8s.io/v1: the core event's behaviour, with upstream's validation for a request in
/// that version (the object it sees is the stored, core form).
pub struct EventsV1;

pub static EVENTS_V1_STRATEGY: EventsV1 = EventsV1;

const REPORTING_INSTANCE_LIMIT: usize = 128;
const ACTION_LIMIT: usize = 128;
const REASON_LIMIT: usize = 128;
const NOTE_LIMIT: usize = 1024;

impl Strategy for EventsV1 {
    fn selectable_fields(&self) -> &'static [&'static str] {
        STRATEGY.selectable_fields()
    }

    fn printer(&self) -> &'static Printer {
        &EVENT_PRINTER
    }

    /// Upstream's legacy event rules, which creates and updates through events.k8s.io/v1 meet.
    fn validate(&self, event: &Value, errors: &mut Vec<FieldError>) {
        legacy_validate(event, errors);
    }

    /// Upstream's `ValidateEventCreate` for events.k8s.io/v1 beyond the legacy rules (paths
    /// name the internal, core fields, as upstream's do).
    fn validate_create(&self, event: &Value, errors: &mut Vec<FieldError>) {
        validate_series(event, errors);
        let set = |k: &str| event.get(k).is_some_and(|v| !v.is_null());
        if !set("eventTime") {
            errors.push(FieldError::required("eventTime", ""));
        }
        let kind = fields::str_at(event, "/type");
        if kind != "Normal" && kind != "Warning" {
            errors.push(FieldError::invalid(
                "type",
                &json!(""),
                format!("has invalid value: {kind}"),
            ));
        }
        for (field, unset) in [
            ("firstTimestamp", !set("firstTimestamp")),
            ("lastTimestamp", !set("lastTimestamp")),
            ("count", event["count"].as_i64().unwrap_or(0) == 0),
            (
                "source",
                fields::str_at(event, "/source/component").is_empty()
                    && fields::str_at(event, "/source/host").is_empty(),
            ),
        ] {
            if !unset {
                errors.push(FieldError::invalid(field, &json!(""), "needs to be unset"));
            }
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        if old.get("series") != new.get("series") {
            validate_series(new, errors);
        }
        for field in [
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "action",
            "related",
            "reportingComponent",
            "reportingInstance",
        ] {
            let path = match field {
                "reportingComponent" => "reportingController",
                f => f,
            };
            fields::immutable(path, old.get(field), new.get(field), errors);
        }
    }
}

fn validate_series(event: &Value, errors: &mut Vec<FieldError>) {
    let Some(series) = event.get("series").filter(|s| !s.is_null()) else {
        return;
    };
    if series["count"].as_i64().unwrap_or(0) < 2 {
        errors.push(FieldError::invalid(
            "series.count",
            &json!(""),
            "should be at least 2",
        ));
    }
    if series.get("lastObservedTime").is_none_or(Value::is_null) {
        errors.push(FieldError::required("series.lastObservedTime", ""));
    }
}

/// Upstream's `legacyValidateEvent` for a request in events.k8s.io (the reporting controller
/// named by its events.k8s.io field).
fn legacy_validate(event: &Value, errors: &mut Vec<FieldError>) {
    let namespace = fields::str_at(event, "/metadata/namespace");
    let involved = fields::str_at(event, "/involvedObject/namespace");
    let mismatch = || {
        FieldError::invalid(
            "involvedObject.namespace",
            &json!(involved),
            "does not match event.namespace",
        )
    };
    if event.get("eventTime").is_none_or(Value::is_null) {
        if involved.is_empty() {
            if !namespace.is_empty() && namespace != "default" {
                errors.push(mismatch());
            }
        } else if namespace != involved {
            errors.push(mismatch());
        }
        return;
    }
    if involved.is_empty() && namespace != "default" && namespace != "kube-system" {
        errors.push(mismatch());
    }
    let controller = fields::str_at(event, "/reportingComponent");
    if controller.is_empty() {
        errors.push(FieldError::required("reportingController", ""));
    }
    for message in crate::names::qualified_name_messages(controller) {
        errors.push(FieldError::invalid(
            "reportingController",
            &json!(controller),
            message,
        ));
    }
    let too_long = |field: &str, value: &str, limit: usize, errors: &mut Vec<FieldError>| {
        if value.len() > limit {
            errors.push(FieldError::invalid(
                field,
                &json!(""),
                format!("can have at most {limit} characters"),
            ));
        }
    };
    let instance = fields::str_at(event, "/reportingInstance");
    if instance.is_empty() {
        errors.push(FieldError::required("reportingInstance", ""));
    }
    too_long(
        "reportingInstance",
        instance,
        REPORTING_INSTANCE_LIMIT,
        errors,
    );
    let action = fields::str_at(event, "/action");
    if action.is_empty() {
        errors.push(FieldError::required("action", ""));
    }
    too_long("action", action, ACTION_LIMIT, errors);
    let reason = fields::str_at(event, "/reason");
    if reason.is_empty() {
        errors.push(FieldError::required("reason", ""));
    }
    too_long("reason", reason, REASON_LIMIT, errors);
    too_long(
        "message",
        fields::str_at(event, "/message"),
        NOTE_LIMIT,
        errors,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_v1_round_trip() {
        let new = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "example.com/c", "reportingInstance": "c-1",
            "action": "Bind", "reason": "Scheduled", "note": "hello", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
            "related": {"kind": "Node", "name": "n"},
            "series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"},
            "deprecatedSource": {"component": "c"}, "deprecatedCount": 3,
            "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z",
            "deprecatedLastTimestamp": "2026-01-01T00:00:01Z",
        });
        let mut core = new.clone();
        events_v1_to_core(&mut core);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["message"], "hello");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["reportingComponent"], "example.com/c");
        assert_eq!(core["source"]["component"], "c");
        assert_eq!(core["count"], 3);
        assert_eq!(core["firstTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(core["related"]["name"], "n");
        assert!(core.get("note").is_none() && core.get("regarding").is_none());
        let mut back = core.clone();
        core_to_events_v1(&mut back);
        assert_eq!(back, new);
    }

    #[test]
    fn events_v1_validation_names_upstream_fields() {
        let mut errors = Vec::new();
        let core = json!({"metadata": {"name": "e", "namespace": "default"}, "type": "Odd",
            "count": 2, "message": "x".repeat(1025)});
        EVENTS_V1_STRATEGY.validate(&core, &mut errors);
        EVENTS_V1_STRATEGY.validate_create(&core, &mut errors);
        let got: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        assert!(
            got.contains(&"eventTime: Required value".to_string()),
            "{got:?}"
        );
        assert!(got.contains(&"type: Invalid value: \"\": has invalid value: Odd".to_string()));
        assert!(got.contains(&"count: Invalid value: \"\": needs to be unset".to_string()));
        let mut errors = Vec::new();
        let core = json!({"metadata": {"name": "e", "namespace": "default"}, "type": "Normal",
            "eventTime": "2026-01-01T00:00:00.000000Z", "message": "x".repeat(1025)});
        EVENTS_V1_STRATEGY.validate(&core, &mut errors);
        let got: Vec<String> = errors.iter().map(|e| e.field.clone()).collect();
        for field in [
            "reportingController",
            "reportingInstance",
            "action",
            "reason",
            "message",
        ] {
            assert!(got.iter().any(|f| f == field), "{field}: {got:?}");
        }
    }
}
