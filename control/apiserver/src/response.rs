//! Response shaping, in one place for every read and for watch streams (upstream's
//! `endpoints/handlers/response.go`): the verbs return objects and lists; what the client asked
//! for in its Accept header — the objects as JSON, a `meta.k8s.io/v1` Table (rows with
//! includeObject None, Metadata or Object) or PartialObjectMetadata — is made here, from the
//! resource's printer (`registry/`).

use jiff::Timestamp;
use serde_json::{json, Map, Value};

use crate::resources::ResourceInfo;
use crate::table::Convertor;

/// What the client asked to get back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Output {
    Json,
    Table(IncludeObject),
    PartialMetadata,
}

/// The `includeObject` query parameter: what each Table row's `object` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    /// No `object` in rows.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (upstream's default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Unknown values fall back to the default rather than failing the request.
    pub fn from_query(v: Option<&str>) -> IncludeObject {
        match v {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// A page of a list as the verbs read it.
pub struct List {
    pub items: Vec<Value>,
    /// The store revision the list was read at (its resourceVersion).
    pub revision: i64,
    /// The continue token when more items follow.
    pub next: Option<String>,
    /// How many items follow this page, when known exactly (a paged list without selectors).
    pub remaining: Option<i64>,
}

/// One object as the client asked for it.
pub fn object(info: &ResourceInfo, output: Output, object: Value) -> Value {
    match output {
        Output::Json => object,
        Output::PartialMetadata => partial_metadata(&object),
        Output::Table(include) => {
            let rv = object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            table(
                info.strategy.convertor(),
                &[object],
                &rv,
                None,
                include,
                Timestamp::now(),
            )
        }
    }
}

/// A list as the client asked for it.
pub fn list(info: &ResourceInfo, output: Output, list: List) -> Value {
    let rv = list.revision.to_string();
    let remaining = list.remaining.filter(|n| *n > 0);
    let metadata = |next: Option<String>| {
        let mut m = json!({"resourceVersion": rv});
        if let Some(n) = next {
            m["continue"] = json!(n);
        }
        if let Some(n) = remaining {
            m["remainingItemCount"] = json!(n);
        }
        m
    };
    match output {
        Output::Table(include) => {
            let mut t = table(
                info.strategy.convertor(),
                &list.items,
                &rv,
                list.next.as_deref(),
                include,
                Timestamp::now(),
            );
            if let Some(n) = remaining {
                t["metadata"]["remainingItemCount"] = json!(n);
            }
            t
        }
        Output::PartialMetadata => {
            let items: Vec<Value> = list.items.iter().map(partial_metadata).collect();
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": metadata(list.next), "items": items})
        }
        Output::Json => {
            json!({"kind": info.list_kind(), "apiVersion": info.api_version(), "metadata": metadata(list.next), "items": list.items})
        }
    }
}

/// The object's metadata alone.
pub fn partial_metadata(object: &Value) -> Value {
    let metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata})
}

/// A watch event's object for a watcher that asked for `output`; `None` for JSON, which goes out
/// as the event's shared encoded line. Table events carry the column definitions only in the
/// first event of a stream, as upstream's.
pub struct WatchShaper {
    output: Output,
    printer: &'static dyn Convertor,
    sent_columns: bool,
}

impl WatchShaper {
    pub fn new(info: &ResourceInfo, output: Output) -> WatchShaper {
        WatchShaper {
            output,
            printer: info.strategy.convertor(),
            sent_columns: false,
        }
    }

    pub fn shape(&mut self, object: &Value) -> Option<Value> {
        match self.output {
            Output::Json => None,
            Output::PartialMetadata => Some(partial_metadata(object)),
            Output::Table(include) => {
                let rv = object["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let mut t = table(
                    self.printer,
                    std::slice::from_ref(object),
                    &rv,
                    None,
                    include,
                    Timestamp::now(),
                );
                if self.sent_columns {
                    if let Some(o) = t.as_object_mut() {
                        o.remove("columnDefinitions");
                    }
                }
                self.sent_columns = true;
                Some(t)
            }
        }
    }
}

/// One table row: `{"cells":[…],"object":…}` (plus `conditions` where the printer gives them).
pub fn row(
    printer: &dyn Convertor,
    object: &Value,
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    let mut row = Map::new();
    row.insert(
        "cells".to_string(),
        Value::Array(printer.cells(object, now)),
    );
    if let Some(conditions) = printer.conditions(object) {
        row.insert("conditions".to_string(), conditions);
    }
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            row.insert("object".to_string(), partial_metadata(object));
        }
        IncludeObject::Object => {
            row.insert("object".to_string(), object.clone());
        }
    }
    Value::Object(row)
}

/// A whole `meta.k8s.io/v1` Table for a list (or a single object, as a one-element slice).
pub fn table(
    printer: &dyn Convertor,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    // ListMeta fields are omitempty upstream.
    let mut metadata = Map::new();
    if !resource_version.is_empty() {
        metadata.insert("resourceVersion".to_string(), Value::from(resource_version));
    }
    if let Some(token) = continue_token.filter(|t| !t.is_empty()) {
        metadata.insert("continue".to_string(), Value::from(token));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| row(printer, o, include, now))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": printer.column_definitions(),
        "rows": rows,
    })
}
