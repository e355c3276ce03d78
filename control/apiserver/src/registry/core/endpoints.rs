//! Endpoints (`pkg/registry/core/endpoint`): port protocols default to TCP; the printer.

use crate::registry::fields::{default, each};
use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct Endpoints;

pub static STRATEGY: Endpoints = Endpoints;

impl Strategy for Endpoints {
    fn default(&self, object: &mut Value) {
        let Some(root) = object.as_object_mut() else {
            return;
        };
        for subset in each(root, "subsets") {
            for p in each(subset, "ports") {
                default(p, "protocol", json!("TCP"));
            }
        }
    }

    fn printer(&self) -> &'static Printer {
        &ENDPOINTS_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const ENDPOINTS_COLUMNS: &[Column] = &[
    NAME,
    col(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];

pub static ENDPOINTS_PRINTER: Printer = Printer::new(ENDPOINTS_COLUMNS, endpoints_cells);

fn endpoints_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        format_endpoints(list(obj, &["subsets"])).into(),
        age(obj, now).into(),
    ]
}

/// Up to three "ip:port" pairs, then "+ N more...".
fn format_endpoints(subsets: &[Value]) -> String {
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut shown: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0usize;
    for subset in subsets {
        let addresses = list(subset, &["addresses"]);
        let ports = list(subset, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for address in addresses {
                if shown.len() == MAX {
                    more = true;
                    break;
                }
                shown.push(text(address, &["ip"]).to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for address in addresses {
                if shown.len() == MAX {
                    more = true;
                    break;
                }
                shown.push(join_host_port(
                    text(address, &["ip"]),
                    integer(port, &["port"]),
                ));
            }
        }
    }
    let joined = shown.join(",");
    if more {
        format!("{joined} + {} more...", count.saturating_sub(MAX))
    } else {
        joined
    }
}

/// IPv6 addresses get brackets, as Go's net.JoinHostPort does.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
