//! networking.k8s.io: Ingresses, IngressClasses and NetworkPolicies (`pkg/registry/networking`)
//! — generation tracking and their printers.

use crate::registry::Strategy;
use crate::table::prelude::*;

/// A networking.k8s.io resource: its printer; generation counts spec changes.
pub struct Networking(&'static Printer);

pub static INGRESSES: Networking = Networking(&INGRESS_PRINTER);
pub static INGRESS_CLASSES: Networking = Networking(&INGRESS_CLASS_PRINTER);
pub static NETWORK_POLICIES: Networking = Networking(&NETWORK_POLICY_PRINTER);

impl Strategy for Networking {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn printer(&self) -> &'static Printer {
        self.0
    }
}

// ---------------------------------------------------------------- table

pub const INGRESS_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Class",
        "string",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    col(
        "Hosts",
        "string",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    col(
        "Address",
        "string",
        "Address is a list containing ingress points for the load-balancer",
    ),
    col("Ports", "string", "Ports of TLS configurations that open"),
    AGE,
];

pub static INGRESS_PRINTER: Printer = Printer::new(INGRESS_COLUMNS, ingress_cells);

fn ingress_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let class = opt_text(obj, &["spec", "ingressClassName"]).unwrap_or("<none>");
    let ports = if list(obj, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    let address =
        load_balancer_ingress(list(obj, &["status", "loadBalancer", "ingress"])).join(",");
    vec![
        name(obj),
        class.into(),
        ingress_hosts(list(obj, &["spec", "rules"])).into(),
        address.into(),
        ports.into(),
        age(obj, now).into(),
    ]
}

/// Up to three rule hosts ("*" when none has one), then "+ N more...".
fn ingress_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        let host = text(rule, &["host"]);
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    if hosts.is_empty() {
        return "*".to_string();
    }
    let joined = hosts.join(",");
    if more {
        format!("{joined} + {} more...", rules.len().saturating_sub(MAX))
    } else {
        joined
    }
}

pub const INGRESS_CLASS_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Controller",
        "string",
        "Controller that is responsible for handling this class",
    ),
    col(
        "Parameters",
        "string",
        "A reference to a resource with additional parameters",
    ),
    AGE,
];

pub static INGRESS_CLASS_PRINTER: Printer =
    Printer::new(INGRESS_CLASS_COLUMNS, ingress_class_cells);

fn ingress_class_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let parameters = match field(obj, &["spec", "parameters"]).filter(|p| !p.is_null()) {
        None => "<none>".to_string(),
        Some(p) => {
            let mut kind = text(p, &["kind"]).to_string();
            if let Some(api_group) = opt_text(p, &["apiGroup"]) {
                kind = format!("{kind}.{api_group}");
            }
            format!("{kind}/{}", text(p, &["name"]))
        }
    };
    vec![
        name(obj),
        text(obj, &["spec", "controller"]).into(),
        parameters.into(),
        age(obj, now).into(),
    ]
}

pub const NETWORK_POLICY_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Pod-Selector",
        "string",
        "Selects the pods to which this NetworkPolicy object applies.",
    ),
    AGE,
];

pub static NETWORK_POLICY_PRINTER: Printer =
    Printer::new(NETWORK_POLICY_COLUMNS, network_policy_cells);

fn network_policy_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // podSelector is not a pointer upstream: missing means empty, which selects everything.
    let pod_selector = field(obj, &["spec", "podSelector"])
        .filter(|s| !s.is_null())
        .cloned()
        .unwrap_or_else(|| json!({}));
    vec![
        name(obj),
        format_label_selector(Some(&pod_selector)).into(),
        age(obj, now).into(),
    ]
}
