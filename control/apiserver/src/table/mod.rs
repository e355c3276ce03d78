//! Printers for server-side `Table` output (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`),
//! the form `kubectl get` asks for: what a printer is (its columns and a function from an object to
//! its cells), the columns many printers share, upstream's generic convertor for built-in resources
//! without a printer (Name, Created At) and the custom-resource convertor's default (Name, Age).
//!
//! Each resource's own printer — columns beside cells, following upstream 1.32's
//! pkg/printers/internalversion/printers.go — lives in its registry file (`registry/apps/
//! deployments.rs` has Deployment's), and its strategy names it. The Table object itself (rows,
//! includeObject, list metadata) is put together in one place, `response.rs`.
//!
//! Upstream's server always renders the wide cells too (`-o wide` columns carry `priority: 1`) and
//! leaves hiding them to kubectl, so every row has one cell per column.
//!
//! Objects are the stored JSON. Anything may be missing (a pod without status yet, a hand-written
//! object): a missing field reads as zero/empty, or as the value upstream defaulting would have
//! filled in, so the output matches what a real cluster shows for the same manifest.

pub mod format;

#[cfg(test)]
mod tests;

use jiff::Timestamp;
use serde_json::{json, Value};

use format::{name, timestamp};

/// What a printer file needs, in one import.
pub mod prelude {
    pub use super::format::*;
    pub use super::{col, wide, Column, Printer, AGE, CONTAINERS, CREATED_DESC, IMAGES, NAME};
    pub use super::{NAME_DESC, SELECTOR};
    pub use jiff::Timestamp;
    pub use serde_json::{json, Map, Value};
    pub use std::collections::BTreeSet;
}

/// One column definition of a Table.
#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    /// OpenAPI type name: "string", "integer", "boolean", "date".
    pub kind: &'static str,
    pub format: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: u32,
    pub description: &'static str,
}

impl Column {
    pub fn to_json(&self) -> Value {
        // Upstream serializes all five fields, empty format included.
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

pub const fn col(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        priority: 0,
        description,
    }
}

pub const fn wide(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        priority: 1,
        description,
    }
}

pub const NAME_DESC: &str = "Name must be unique within a namespace.";
pub const CREATED_DESC: &str =
    "CreationTimestamp is a timestamp representing the server time when this object was created.";
pub const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
    description: NAME_DESC,
};
pub const AGE: Column = col("Age", "string", CREATED_DESC);
pub const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
pub const IMAGES: Column = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);
pub const SELECTOR: Column = wide(
    "Selector",
    "string",
    "Label query over pods that should match the replica count.",
);

/// A resource's table printer: its columns and the cells of one object's row.
pub struct Printer {
    pub columns: &'static [Column],
    pub cells: fn(&Value, Timestamp) -> Vec<Value>,
    /// Row conditions (`TableRow.conditions`); upstream's pod printer marks finished pods
    /// `Completed` so kubectl can hide them.
    pub conditions: fn(&Value) -> Option<Value>,
}

fn no_conditions(_: &Value) -> Option<Value> {
    None
}

/// What turns objects into Table rows: a built-in resource's [`Printer`], or a custom
/// resource's columns (`customresource/columns.rs`), which are data rather than code.
pub trait Convertor: Sync {
    /// The Table's `columnDefinitions`.
    fn column_definitions(&self) -> Value;
    /// One object's cells, one per column.
    fn cells(&self, object: &Value, now: Timestamp) -> Vec<Value>;
    /// Row conditions (`TableRow.conditions`).
    fn conditions(&self, _object: &Value) -> Option<Value> {
        None
    }
}

impl Convertor for Printer {
    fn column_definitions(&self) -> Value {
        Printer::column_definitions(self)
    }
    fn cells(&self, object: &Value, now: Timestamp) -> Vec<Value> {
        (self.cells)(object, now)
    }
    fn conditions(&self, object: &Value) -> Option<Value> {
        (self.conditions)(object)
    }
}

impl Printer {
    pub const fn new(
        columns: &'static [Column],
        cells: fn(&Value, Timestamp) -> Vec<Value>,
    ) -> Printer {
        Printer {
            columns,
            cells,
            conditions: no_conditions,
        }
    }

    /// The Table's `columnDefinitions`.
    pub fn column_definitions(&self) -> Value {
        Value::Array(self.columns.iter().map(Column::to_json).collect())
    }
}

const BUILTIN_DEFAULT_COLUMNS: &[Column] = &[NAME, col("Created At", "date", CREATED_DESC)];

/// A built-in resource without a printer (roles, clusterroles, limitranges, …): upstream's
/// generic convertor, Name and Created At.
pub static BUILTIN_DEFAULT: Printer = Printer::new(BUILTIN_DEFAULT_COLUMNS, builtin_default_cells);

/// A custom resource: the CRD convertor's default columns, Name and Age.
pub static CUSTOM_RESOURCE: Printer = Printer::new(
    &[NAME, col("Age", "date", CREATED_DESC)],
    custom_resource_cells,
);

/// The printer upstream falls back to for a resource of `group` that has none of its own.
pub fn fallback(group: &str) -> &'static Printer {
    if is_builtin_group(group) {
        &BUILTIN_DEFAULT
    } else {
        &CUSTOM_RESOURCE
    }
}

/// Groups served by kube-apiserver itself; anything else is assumed to come from a CRD.
fn is_builtin_group(group: &str) -> bool {
    matches!(
        group,
        "" | "apps"
            | "batch"
            | "autoscaling"
            | "policy"
            | "extensions"
            | "networking.k8s.io"
            | "rbac.authorization.k8s.io"
            | "storage.k8s.io"
            | "scheduling.k8s.io"
            | "node.k8s.io"
            | "coordination.k8s.io"
            | "discovery.k8s.io"
            | "events.k8s.io"
            | "certificates.k8s.io"
            | "admissionregistration.k8s.io"
            | "apiextensions.k8s.io"
            | "apiregistration.k8s.io"
            | "flowcontrol.apiserver.k8s.io"
            | "authentication.k8s.io"
            | "authorization.k8s.io"
            | "resource.k8s.io"
            | "internal.apiserver.k8s.io"
            | "storagemigration.k8s.io"
    )
}

/// Upstream's generic convertor: the creation time as RFC 3339 in UTC, Go's zero time when unset.
fn builtin_default_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let created = match timestamp(obj, &["metadata", "creationTimestamp"]) {
        // Whole seconds, as Go's RFC 3339 layout; Display cannot fail where strftime could.
        Some(ts) => Timestamp::from_second(ts.as_second())
            .unwrap_or(ts)
            .to_string(),
        None => "0001-01-01T00:00:00Z".to_string(),
    };
    vec![name(obj), created.into()]
}

fn custom_resource_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![name(obj), format::age(obj, now).into()]
}
