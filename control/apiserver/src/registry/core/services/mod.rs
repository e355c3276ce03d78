//! Services (`pkg/registry/core/service`): defaults per type, validation (DNS-1035 names, ports,
//! type rules), an immutable clusterIP, and ClusterIP/NodePort allocation in the same transaction
//! as the write (`allocator.rs`), released with the delete; the `kubectl get svc` printer.

pub mod allocator;

use futures::future::BoxFuture;

use crate::error::{ApiResult, FieldError};
use crate::names;
use crate::registry::fields::{check_enum, child, default, each, immutable, str_at};
use crate::registry::Strategy;
use crate::storage::{Extra, Storage};
use crate::table::prelude::*;

pub struct Services;

pub static STRATEGY: Services = Services;

impl Strategy for Services {
    fn name_rule(&self) -> names::NameRule {
        names::DNS1035
    }

    fn default(&self, object: &mut Value) {
        let Some(root) = object.as_object_mut() else {
            return;
        };
        let spec = child(root, "spec");
        default(spec, "type", json!("ClusterIP"));
        let kind = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
        default(spec, "sessionAffinity", json!("None"));
        if kind != "ExternalName" {
            default(spec, "ipFamilies", json!(["IPv4"]));
            default(spec, "ipFamilyPolicy", json!("SingleStack"));
            default(spec, "internalTrafficPolicy", json!("Cluster"));
        }
        if kind == "NodePort" || kind == "LoadBalancer" {
            default(spec, "externalTrafficPolicy", json!("Cluster"));
        }
        if kind == "LoadBalancer" {
            default(spec, "allocateLoadBalancerNodePorts", json!(true));
        }
        for p in each(spec, "ports") {
            default(p, "protocol", json!("TCP"));
            // Protobuf bodies carry an unset targetPort as 0.
            if p.get("targetPort").is_some_and(|t| t == 0) {
                p.remove("targetPort");
            }
            if let Some(port) = p.get("port").cloned() {
                default(p, "targetPort", port);
            }
        }
        let status = child(root, "status");
        default(status, "loadBalancer", json!({}));
    }

    fn validate(&self, object: &Value, errors: &mut Vec<FieldError>) {
        validate_spec(&object["spec"], errors);
    }

    fn validate_update(&self, old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
        let old_ip = old.pointer("/spec/clusterIP");
        let new_ip = new.pointer("/spec/clusterIP");
        if new_ip
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            immutable("spec.clusterIP", old_ip, new_ip, errors);
        }
    }

    fn printer(&self) -> &'static Printer {
        &SERVICE_PRINTER
    }

    fn allocate<'a>(
        &'a self,
        storage: &'a Storage,
        old: Option<&'a Value>,
        new: &'a mut Value,
        key: &'a str,
    ) -> Option<BoxFuture<'a, ApiResult<Extra>>> {
        Some(Box::pin(allocator::allocate(storage, old, new, key)))
    }

    fn held_keys(&self, object: &Value) -> Vec<String> {
        allocator::held_keys(object)
    }

    fn delete_returns_object(&self) -> bool {
        true
    }
}

fn validate_spec(spec: &Value, errors: &mut Vec<FieldError>) {
    let kind = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    check_enum(
        "spec.type",
        spec.get("type"),
        &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"],
        errors,
    );
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if ports.is_empty() && kind != "ExternalName" && str_at(spec, "/clusterIP") != "None" {
        errors.push(FieldError::required("spec.ports", ""));
    }
    if kind == "ExternalName" && str_at(spec, "/externalName").is_empty() {
        errors.push(FieldError::required("spec.externalName", ""));
    }
    let mut names = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&port) {
            errors.push(FieldError::invalid(
                format!("spec.ports[{i}].port"),
                p.get("port").unwrap_or(&Value::Null),
                "must be between 1 and 65535, inclusive",
            ));
        }
        let name = str_at(p, "/name");
        if ports.len() > 1 && name.is_empty() {
            errors.push(FieldError::required(format!("spec.ports[{i}].name"), ""));
        } else if !name.is_empty() && names.contains(&name) {
            errors.push(FieldError::duplicate(
                format!("spec.ports[{i}].name"),
                &p["name"],
            ));
        }
        names.push(name);
        check_enum(
            &format!("spec.ports[{i}].protocol"),
            p.get("protocol"),
            &["TCP", "UDP", "SCTP"],
            errors,
        );
        if let Some(np) = p.get("nodePort").and_then(Value::as_i64) {
            if kind == "ClusterIP" && np != 0 {
                errors.push(FieldError::forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
}

// ---------------------------------------------------------------- table

pub const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Type",
        "string",
        "Type determines how the Service is exposed.",
    ),
    col(
        "Cluster-IP",
        "string",
        "ClusterIP is the IP address of the service.",
    ),
    col(
        "External-IP",
        "string",
        "ExternalIPs or load-balancer ingress points of the service.",
    ),
    col(
        "Port(s)",
        "string",
        "The list of ports that are exposed by this service.",
    ),
    AGE,
    wide(
        "Selector",
        "string",
        "Route service traffic to pods with label keys and values matching this selector.",
    ),
];

pub static SERVICE_PRINTER: Printer = Printer::new(SERVICE_COLUMNS, service_cells);

fn service_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    // spec.type defaults to ClusterIP.
    let service_type = non_empty_or(text(obj, &["spec", "type"]), "ClusterIP");
    // Upstream's conversion makes clusterIP authoritative over clusterIPs[0].
    let mut cluster_ip = text(obj, &["spec", "clusterIP"]);
    if cluster_ip.is_empty() {
        cluster_ip = list(obj, &["spec", "clusterIPs"])
            .first()
            .and_then(Value::as_str)
            .unwrap_or("");
    }
    let ports = service_ports(list(obj, &["spec", "ports"]));
    vec![
        name(obj),
        service_type.into(),
        non_empty_or(cluster_ip, "<none>").into(),
        service_external_ip(obj, service_type).into(),
        non_empty_or(&ports, "<none>").into(),
        age(obj, now).into(),
        format_labels(field(obj, &["spec", "selector"])).into(),
    ]
}

fn service_external_ip(obj: &Value, service_type: &str) -> String {
    let external_ips: Vec<&str> = list(obj, &["spec", "externalIPs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match service_type {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_string()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            let ingress = load_balancer_ingress(list(obj, &["status", "loadBalancer", "ingress"]));
            if !external_ips.is_empty() {
                let mut all: Vec<&str> = ingress.iter().map(String::as_str).collect();
                all.extend(external_ips);
                all.join(",")
            } else if !ingress.is_empty() {
                ingress.join(",")
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => text(obj, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// "80/TCP,443:30443/TCP".
fn service_ports(ports: &[Value]) -> String {
    let pieces: Vec<String> = ports
        .iter()
        .map(|p| {
            let port = integer(p, &["port"]);
            let protocol = non_empty_or(text(p, &["protocol"]), "TCP");
            let node_port = integer(p, &["nodePort"]);
            if node_port > 0 {
                format!("{port}:{node_port}/{protocol}")
            } else {
                format!("{port}/{protocol}")
            }
        })
        .collect();
    pieces.join(",")
}
