//! Events (`pkg/registry/core/event`): the field selectors kubectl and controllers use, and the
//! event printer — shared with events.k8s.io/v1, whose events carry the same fields under newer
//! names.

use crate::registry::Strategy;
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

pub static EVENTS_V1_EVENT_PRINTER: Printer = Printer::new(EVENT_COLUMNS, events_v1_event_cells);

/// Where the fields upstream's event printer reads live in each event API.
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

const EVENTS_V1_EVENT_FIELDS: EventFields = EventFields {
    first_timestamp: "deprecatedFirstTimestamp",
    last_timestamp: "deprecatedLastTimestamp",
    count: "deprecatedCount",
    involved_object: "regarding",
    source: "deprecatedSource",
    reporting_controller: "reportingController",
    message: "note",
};

fn core_event_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    event_cells(obj, now, &CORE_EVENT_FIELDS)
}

fn events_v1_event_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    event_cells(obj, now, &EVENTS_V1_EVENT_FIELDS)
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
