//! Nodes (`pkg/registry/core/node`): the kubelet writes a node's status itself on create, field
//! selectors on spec.unschedulable, and the `kubectl get nodes` printer.

use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct Nodes;

pub static STRATEGY: Nodes = Nodes;

impl Strategy for Nodes {
    fn keeps_status_on_create(&self) -> bool {
        true
    }

    fn selectable_fields(&self) -> &'static [&'static str] {
        &["spec.unschedulable"]
    }

    fn printer(&self) -> &'static Printer {
        &NODE_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const NODE_COLUMNS: &[Column] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
    wide(
        "Internal-IP",
        "string",
        "List of addresses reachable to the node.",
    ),
    wide(
        "External-IP",
        "string",
        "List of addresses reachable to the node.",
    ),
    wide("OS-Image", "string", "OS Image reported by the node."),
    wide(
        "Kernel-Version",
        "string",
        "Kernel Version reported by the node.",
    ),
    wide(
        "Container-Runtime",
        "string",
        "ContainerRuntime Version reported by the node.",
    ),
];

pub static NODE_PRINTER: Printer = Printer::new(NODE_COLUMNS, node_cells);

fn node_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // The last Ready condition wins, as upstream builds a map keyed by type.
    let ready = list(obj, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| text(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if text(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if boolean(obj, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }

    let roles = node_roles(obj);
    let node_info =
        |key: &str| non_empty_or(text(obj, &["status", "nodeInfo", key]), "<unknown>").to_string();
    vec![
        name(obj),
        status.join(",").into(),
        non_empty_or(&roles.join(","), "<none>").into(),
        age(obj, now).into(),
        text(obj, &["status", "nodeInfo", "kubeletVersion"]).into(),
        node_address(obj, "InternalIP").into(),
        node_address(obj, "ExternalIP").into(),
        node_info("osImage").into(),
        node_info("kernelVersion").into(),
        node_info("containerRuntimeVersion").into(),
    ]
}

/// Roles from `node-role.kubernetes.io/<role>` label keys and the older `kubernetes.io/role=<role>`.
fn node_roles(obj: &Value) -> Vec<String> {
    let mut roles = BTreeSet::new();
    if let Some(labels) = field(obj, &["metadata", "labels"]).and_then(Value::as_object) {
        for (key, value) in labels {
            if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if key == "kubernetes.io/role" {
                let role = value.as_str().unwrap_or("");
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            }
        }
    }
    roles.into_iter().collect()
}

fn node_address(obj: &Value, address_type: &str) -> String {
    list(obj, &["status", "addresses"])
        .iter()
        .find(|a| text(a, &["type"]) == address_type)
        .map(|a| text(a, &["address"]).to_string())
        .unwrap_or_else(|| "<none>".to_string())
}
