//! What the datapath should hold, computed from the API objects alone (pure, unit-tested):
//! one frontend per (ClusterIP, port, protocol) of every Service, with the backends its
//! EndpointSlices give for that port — kube-proxy's `ServicePortMap`/`EndpointsMap` in one
//! step.
//!
//! Upstream's rules: headless and ExternalName Services get no frontend; a port's backends
//! are the slice endpoints whose port has the same name; ready endpoints are used, and only
//! when none is ready the serving-and-terminating ones (KEP-1669); `internalTrafficPolicy:
//! Local` keeps this node's endpoints only; a port whose protocol the datapath cannot serve
//! (SCTP) is reported, not programmed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::maps::{IPPROTO_TCP, IPPROTO_UDP};

/// upstream's default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 h).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    /// `namespace/name:port-name`, for logs and the debug listing.
    pub service: String,
    pub address: Ipv4Addr,
    pub port: u16,
    pub proto: u8,
    /// Sorted, so an unchanged set compares equal and keeps its slots.
    pub backends: Vec<(Ipv4Addr, u16)>,
    pub affinity_timeout: u32,
}

impl Frontend {
    pub fn id(&self) -> (Ipv4Addr, u16, u8) {
        (self.address, self.port, self.proto)
    }
}

/// Ports the datapath skipped, with why (for events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub service: String,
    pub reason: String,
}

fn protocol(p: Option<&str>) -> Option<u8> {
    match p.unwrap_or("TCP") {
        "TCP" => Some(IPPROTO_TCP),
        "UDP" => Some(IPPROTO_UDP),
        _ => None,
    }
}

/// The frontends of one Service given its EndpointSlices (those labelled
/// `kubernetes.io/service-name=<name>` in its namespace) on node `node`.
pub fn frontends(
    service: &Service,
    slices: &[&EndpointSlice],
    node: &str,
    skipped: &mut Vec<Skipped>,
) -> Vec<Frontend> {
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    let namespace = service.metadata.namespace.clone().unwrap_or_default();
    let name = service.metadata.name.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    let ips: Vec<Ipv4Addr> = spec
        .cluster_ips
        .clone()
        .or_else(|| spec.cluster_ip.clone().map(|ip| vec![ip]))
        .unwrap_or_default()
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if ips.is_empty() {
        return Vec::new(); // headless ("None"), or not allocated yet
    }
    let local_only = spec.internal_traffic_policy.as_deref() == Some("Local");
    let affinity_timeout = if spec.session_affinity.as_deref() == Some("ClientIP") {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .map(|t| t.max(1) as u32)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    } else {
        0
    };
    let mut out = Vec::new();
    for port in spec.ports.iter().flatten() {
        let port_name = port.name.clone().unwrap_or_default();
        let label = format!(
            "{namespace}/{name}:{}",
            if port_name.is_empty() {
                port.port.to_string()
            } else {
                port_name.clone()
            }
        );
        let Some(proto) = protocol(port.protocol.as_deref()) else {
            skipped.push(Skipped {
                service: label,
                reason: format!(
                    "protocol {} is not supported by the service proxy",
                    port.protocol.as_deref().unwrap_or_default()
                ),
            });
            continue;
        };
        let backends = backends_for(
            slices,
            &port_name,
            port.protocol.as_deref().unwrap_or("TCP"),
            local_only,
            node,
        );
        for ip in &ips {
            out.push(Frontend {
                service: label.clone(),
                address: *ip,
                port: port.port as u16,
                proto,
                backends: backends.clone(),
                affinity_timeout,
            });
        }
    }
    out
}

fn backends_for(
    slices: &[&EndpointSlice],
    port_name: &str,
    protocol: &str,
    local_only: bool,
    node: &str,
) -> Vec<(Ipv4Addr, u16)> {
    let mut ready = Vec::new();
    let mut terminating = Vec::new();
    for slice in slices.iter().filter(|s| s.address_type == "IPv4") {
        let Some(port) = slice.ports.iter().flatten().find(|p| {
            p.name.clone().unwrap_or_default() == port_name
                && p.protocol.as_deref().unwrap_or("TCP") == protocol
        }) else {
            continue;
        };
        let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else {
            continue;
        };
        for endpoint in &slice.endpoints {
            if local_only && endpoint.node_name.as_deref() != Some(node) {
                continue;
            }
            let conditions = endpoint.conditions.clone().unwrap_or_default();
            let is_ready = conditions.ready.unwrap_or(true);
            let serving = conditions.serving.unwrap_or(is_ready);
            let is_terminating = conditions.terminating.unwrap_or(false);
            for address in &endpoint.addresses {
                let Ok(ip) = address.parse::<Ipv4Addr>() else {
                    continue;
                };
                if is_ready && !is_terminating {
                    ready.push((ip, number));
                } else if serving && is_terminating {
                    terminating.push((ip, number));
                }
            }
        }
    }
    let mut chosen = if ready.is_empty() { terminating } else { ready };
    chosen.sort();
    chosen.dedup();
    chosen
}

/// Every frontend of the cluster: Services joined with their slices by the service-name label.
pub fn all_frontends<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    node: &str,
    skipped: &mut Vec<Skipped>,
) -> Vec<Frontend> {
    let mut by_service: BTreeMap<(String, String), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in slices {
        let labels = slice.metadata.labels.clone().unwrap_or_default();
        if let Some(service) = labels.get("kubernetes.io/service-name") {
            by_service
                .entry((
                    slice.metadata.namespace.clone().unwrap_or_default(),
                    service.clone(),
                ))
                .or_default()
                .push(slice);
        }
    }
    let mut out = Vec::new();
    for service in services {
        let key = (
            service.metadata.namespace.clone().unwrap_or_default(),
            service.metadata.name.clone().unwrap_or_default(),
        );
        let slices = by_service.get(&key).map(Vec::as_slice).unwrap_or(&[]);
        out.extend(frontends(service, slices, node, skipped));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec}),
        )
        .unwrap()
    }

    fn slice(ports: serde_json::Value, endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": ports, "endpoints": endpoints,
        }))
        .unwrap()
    }

    #[test]
    fn ports_match_by_name_and_ready_endpoints_win() {
        let svc = service(
            json!({"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ports": [
                {"name": "http", "port": 80, "targetPort": "web"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "sctp", "port": 9, "protocol": "SCTP"},
            ]}),
        );
        let s = slice(
            json!([{"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}]),
            json!([
                {"addresses": ["10.244.1.3"], "conditions": {"ready": true}},
                {"addresses": ["10.244.1.2"]},
                {"addresses": ["10.244.2.9"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.244.2.8"], "conditions": {"ready": false}},
            ]),
        );
        let mut skipped = Vec::new();
        let f = all_frontends([&svc], [&s], "n1", &mut skipped);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].port, 80);
        assert_eq!(f[0].proto, IPPROTO_TCP);
        assert_eq!(
            f[0].backends,
            vec![
                (Ipv4Addr::new(10, 244, 1, 2), 8080),
                (Ipv4Addr::new(10, 244, 1, 3), 8080)
            ]
        );
        assert_eq!(f[1].proto, IPPROTO_UDP);
        assert_eq!(f[1].backends[0].1, 5353);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].reason.contains("SCTP"), "{skipped:?}");
    }

    #[test]
    fn terminating_endpoints_only_when_nothing_is_ready_and_local_policy() {
        let svc = service(
            json!({"clusterIP": "10.96.0.21", "internalTrafficPolicy": "Local", "sessionAffinity": "ClientIP", "ports": [{"port": 80}]}),
        );
        let s = slice(
            json!([{"port": 8080}]),
            json!([
                {"addresses": ["10.244.1.5"], "nodeName": "n1", "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.244.2.5"], "nodeName": "n2", "conditions": {"ready": true}},
            ]),
        );
        let mut skipped = Vec::new();
        let f = all_frontends([&svc], [&s], "n1", &mut skipped);
        assert_eq!(f[0].backends, vec![(Ipv4Addr::new(10, 244, 1, 5), 8080)]);
        assert_eq!(f[0].affinity_timeout, DEFAULT_AFFINITY_TIMEOUT);
        let f = all_frontends([&svc], [&s], "n2", &mut skipped);
        assert_eq!(f[0].backends, vec![(Ipv4Addr::new(10, 244, 2, 5), 8080)]);
    }

    #[test]
    fn headless_external_name_and_unallocated_services_get_nothing() {
        let mut skipped = Vec::new();
        for spec in [
            json!({"clusterIP": "None", "ports": [{"port": 80}]}),
            json!({"type": "ExternalName", "externalName": "example.com"}),
            json!({"ports": [{"port": 80}]}),
        ] {
            assert!(all_frontends([&service(spec)], [], "n1", &mut skipped).is_empty());
        }
        // No endpoints: a frontend with no backends (connect is refused at once).
        let f = all_frontends(
            [&service(
                json!({"clusterIP": "10.96.0.22", "ports": [{"port": 80}]}),
            )],
            [],
            "n1",
            &mut skipped,
        );
        assert_eq!(f.len(), 1);
        assert!(f[0].backends.is_empty());
    }
}
