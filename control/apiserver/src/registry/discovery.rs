//! discovery.k8s.io: EndpointSlices (`pkg/registry/discovery/endpointslice`) — port protocols
//! default to TCP; the printer.

use crate::registry::fields::{default, each};
use crate::registry::Strategy;
use crate::table::prelude::*;

pub struct EndpointSlices;

pub static ENDPOINT_SLICES: EndpointSlices = EndpointSlices;

impl Strategy for EndpointSlices {
    fn default(&self, object: &mut Value) {
        let Some(root) = object.as_object_mut() else {
            return;
        };
        for p in each(root, "ports") {
            default(p, "protocol", json!("TCP"));
        }
    }

    fn printer(&self) -> &'static Printer {
        &ENDPOINT_SLICE_PRINTER
    }
}

// ---------------------------------------------------------------- table

pub const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    NAME,
    col(
        "AddressType",
        "string",
        "The type of address carried by this EndpointSlice.",
    ),
    col(
        "Ports",
        "string",
        "The network ports exposed by each endpoint in this slice.",
    ),
    col(
        "Endpoints",
        "string",
        "A list of unique endpoints in this slice.",
    ),
    AGE,
];

pub static ENDPOINT_SLICE_PRINTER: Printer =
    Printer::new(ENDPOINT_SLICE_COLUMNS, endpoint_slice_cells);

fn endpoint_slice_cells(obj: &Value, now: Timestamp) -> Vec<Value> {
    const MAX: usize = 3;
    let mut ports_shown: Vec<String> = Vec::new();
    let ports = list(obj, &["ports"]);
    for port in ports.iter().take(MAX) {
        let shown = if let Some(number) = opt_integer(port, &["port"]) {
            number.to_string()
        } else if let Some(port_name) = opt_text(port, &["name"]) {
            port_name.to_string()
        } else {
            "*".to_string()
        };
        ports_shown.push(shown);
    }
    let mut addresses: Vec<&str> = Vec::new();
    let mut address_count = 0usize;
    for endpoint in list(obj, &["endpoints"]) {
        for address in list(endpoint, &["addresses"]) {
            if addresses.len() < MAX {
                addresses.push(address.as_str().unwrap_or(""));
            }
            address_count += 1;
        }
    }
    vec![
        name(obj),
        text(obj, &["addressType"]).into(),
        list_with_more(
            &ports_shown.iter().map(String::as_str).collect::<Vec<_>>(),
            ports.len(),
            MAX,
        )
        .into(),
        list_with_more(&addresses, address_count, MAX).into(),
        age(obj, now).into(),
    ]
}

/// "a,b,c + 2 more...", or "<unset>" when empty.
fn list_with_more(shown: &[&str], total: usize, max: usize) -> String {
    let joined = shown.join(",");
    if total > max {
        return format!("{joined} + {} more...", total - max);
    }
    if joined.is_empty() {
        return "<unset>".to_string();
    }
    joined
}
