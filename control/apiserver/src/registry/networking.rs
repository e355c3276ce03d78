//! networking.k8s.io (`pkg/registry/networking`): Ingresses, IngressClasses and NetworkPolicies
//! (generation tracking and their printers), and the ClusterIP allocator's objects:
//! ServiceCIDRs (the ranges; the server creates `kubernetes` = 10.96.0.0/12 at bootstrap) and
//! IPAddresses (one per allocated ClusterIP, written by the Service allocator in the Service's
//! own transaction — `core/services/allocator.rs`).
//!
//! Not yet as upstream: the allocator hands out addresses from the default range only, so a
//! ServiceCIDR a user adds is stored but not allocated from, and no ServiceCIDR controller
//! keeps one (with its finalizer) while addresses from it are in use.

use std::net::IpAddr;

use serde_json::json;

use crate::error::FieldError;
use crate::names::{NameRule, PATH_SEGMENT};
use crate::registry::fields::immutable;
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

/// The ServiceCIDR the server creates at bootstrap (upstream's `DefaultServiceCIDRName`).
pub const DEFAULT_SERVICE_CIDR: &str = "kubernetes";

/// IPAddresses: named by the address itself, bound to their parent object for life.
pub struct IpAddresses;

pub static IP_ADDRESSES: IpAddresses = IpAddresses;

/// Upstream `ValidateIPAddressName`: the name is an IP address in canonical form.
const IP_NAME: NameRule = NameRule {
    check: |s| s.parse::<IpAddr>().is_ok_and(|ip| ip.to_string() == s),
    message: "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
};

impl Strategy for IpAddresses {
    fn name_rule(&self) -> NameRule {
        IP_NAME
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let Some(parent) = object.pointer("/spec/parentRef").filter(|p| !p.is_null()) else {
            errors.push(FieldError::required("spec.parentRef", ""));
            return;
        };
        let field = |name: &str| parent.get(name).and_then(Value::as_str).unwrap_or_default();
        let group = field("group");
        if !group.is_empty() && !crate::names::is_dns1123_subdomain(group) {
            errors.push(FieldError::invalid(
                "spec.parentRef.group",
                &json!(group),
                crate::names::DNS1123_SUBDOMAIN_MSG,
            ));
        }
        for (name, required) in [("resource", true), ("name", true), ("namespace", false)] {
            let value = field(name);
            let path = format!("spec.parentRef.{name}");
            if value.is_empty() {
                if required {
                    errors.push(FieldError::required(path, ""));
                }
            } else if !(PATH_SEGMENT.check)(value) {
                errors.push(FieldError::invalid(
                    path,
                    &json!(value),
                    PATH_SEGMENT.message,
                ));
            }
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        immutable(
            "spec.parentRef",
            old.pointer("/spec/parentRef"),
            new.pointer("/spec/parentRef"),
            errors,
        );
    }

    fn printer(&self) -> &'static Printer {
        &IP_ADDRESS_PRINTER
    }
}

/// ServiceCIDRs: one or two CIDRs (one per family), immutable once set; status is the
/// controller's.
pub struct ServiceCidrs;

pub static SERVICE_CIDRS: ServiceCidrs = ServiceCidrs;

impl Strategy for ServiceCidrs {
    fn tracks_generation(&self) -> bool {
        true
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        let cidrs: Vec<&str> = object
            .pointer("/spec/cidrs")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if cidrs.is_empty() {
            errors.push(FieldError::required(
                "spec.cidrs",
                "at least one CIDR required",
            ));
            return;
        }
        if cidrs.len() > 2 {
            errors.push(FieldError::invalid(
                "spec.cidrs",
                object.get("spec").unwrap_or(&Value::Null),
                "may only hold up to 2 values",
            ));
            return;
        }
        let mut families = Vec::new();
        for (i, cidr) in cidrs.iter().enumerate() {
            match cidr.parse::<ipnetwork::IpNetwork>() {
                Ok(net) if net.network() == net.ip() => families.push(net.is_ipv4()),
                Ok(net) => errors.push(FieldError::invalid(
                    format!("spec.cidrs[{i}]"),
                    &json!(cidr),
                    format!(
                        "must be in canonical form (\"{}/{}\")",
                        net.network(),
                        net.prefix()
                    ),
                )),
                Err(_) => errors.push(FieldError::invalid(
                    format!("spec.cidrs[{i}]"),
                    &json!(cidr),
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                )),
            }
        }
        if families.len() == 2 && families[0] == families[1] {
            errors.push(FieldError::invalid(
                "spec.cidrs",
                object.pointer("/spec/cidrs").unwrap_or(&Value::Null),
                "may specify no more than one IP for each IP family, i.e 192.168.0.0/24 and 2001:db8::/64",
            ));
        }
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        // Upstream allows adding a second family to a single-family ServiceCIDR; nothing else.
        let list = |v: &Value| -> Vec<Value> {
            v.pointer("/spec/cidrs")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let (old, new) = (list(old), list(new));
        let grown = old.len() == 1 && new.len() == 2 && new[0] == old[0];
        if old != new && !grown {
            errors.push(FieldError::invalid(
                "spec.cidrs",
                &Value::Array(new),
                "field is immutable",
            ));
        }
    }

    fn printer(&self) -> &'static Printer {
        &SERVICE_CIDR_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const SERVICE_CIDR_COLUMNS: &[Column] = &[
    NAME,
    col("CIDRs", "string", "CIDRs defines the IP blocks in CIDR notation (e.g. \"192.168.0.0/24\" or \"2001:db8::/64\") from which to assign service cluster IPs. Max of two CIDRs is allowed, one of each IP family. This field is immutable."),
    AGE,
];

pub static SERVICE_CIDR_PRINTER: Printer = Printer::new(SERVICE_CIDR_COLUMNS, service_cidr_cells);

fn service_cidr_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    let cidrs: Vec<&str> = list(obj, &["spec", "cidrs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    vec![name(obj), cidrs.join(",").into(), age(obj, now).into()]
}

pub const IP_ADDRESS_COLUMNS: &[Column] = &[
    NAME,
    col("ParentRef", "string", "ParentRef references the resource that an IPAddress is attached to. An IPAddress must reference a parent object."),
];

pub static IP_ADDRESS_PRINTER: Printer = Printer::new(IP_ADDRESS_COLUMNS, ip_address_cells);

/// `services/default/kubernetes`: group-qualified resource, namespace, name (upstream
/// `printIPAddress`).
fn ip_address_cells(obj: &Value, _now: Timestamp) -> Vec<Value> {
    let parent = match obj.pointer("/spec/parentRef").filter(|p| !p.is_null()) {
        None => "<none>".to_string(),
        Some(p) => {
            let field = |n: &str| p.get(n).and_then(Value::as_str).unwrap_or_default();
            let mut out = match field("group") {
                "" => field("resource").to_lowercase(),
                g => format!("{}.{}", field("resource"), g).to_lowercase(),
            };
            if !field("namespace").is_empty() {
                out = format!("{out}/{}", field("namespace"));
            }
            format!("{out}/{}", field("name"))
        }
    };
    vec![name(obj), parent.into()]
}

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
