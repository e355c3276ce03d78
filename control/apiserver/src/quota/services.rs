//! What a Service costs (upstream `pkg/quota/v1/evaluator/core/services.go`): one `services`
//! (and `count/services`), its node ports when it is a NodePort or LoadBalancer Service (every
//! port, or only those with an explicit nodePort when `allocateLoadBalancerNodePorts` is
//! false), and one `services.loadbalancers` for a LoadBalancer.

use serde_json::Value;

use super::{Quantity, ResourceList};

pub const RESOURCES: &[&str] = &[
    "count/services",
    "services",
    "services.nodeports",
    "services.loadbalancers",
];

pub fn usage(service: &Value) -> ResourceList {
    let spec = &service["spec"];
    let ports = spec["ports"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let mut node_ports = 0;
    let mut load_balancers = 0;
    match spec["type"].as_str() {
        Some("NodePort") => node_ports = ports.len(),
        Some("LoadBalancer") => {
            load_balancers = 1;
            node_ports = if spec["allocateLoadBalancerNodePorts"].as_bool() == Some(false) {
                ports
                    .iter()
                    .filter(|p| p["nodePort"].as_i64().is_some_and(|n| n != 0))
                    .count()
            } else {
                ports.len()
            };
        }
        _ => {}
    }
    let mut out = ResourceList::new();
    out.insert("count/services".into(), Quantity::from_count(1));
    out.insert("services".into(), Quantity::from_count(1));
    out.insert(
        "services.nodeports".into(),
        Quantity::from_count(node_ports as i64),
    );
    out.insert(
        "services.loadbalancers".into(),
        Quantity::from_count(load_balancers),
    );
    out
}
