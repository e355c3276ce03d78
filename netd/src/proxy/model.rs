//! What the datapath should hold, computed from the API objects alone (pure, unit-tested):
//! one frontend per (address, port, protocol, scope) of every Service, with the backends its
//! EndpointSlices give for that port — kube-proxy's `ServicePortMap`/`EndpointsMap` in one
//! step. A Service port yields frontends for its ClusterIPs, its NodePort (the
//! `0.0.0.0:nodePort` wildcard), its LoadBalancer ingress IPs and its externalIPs; the last
//! three are also served to traffic from outside the node (flag `EXTERNAL`).
//!
//! Upstream's rules: headless and ExternalName Services get no frontend; a port's backends
//! are the slice endpoints whose port has the same name; ready endpoints are used, and only
//! when none is ready the serving-and-terminating ones (KEP-1669); `internalTrafficPolicy:
//! Local` keeps this node's endpoints only for the ClusterIP; `externalTrafficPolicy: Local`
//! adds a scope-EXT frontend with this node's endpoints only, which outside traffic uses
//! (in-cluster traffic to a NodePort or LoadBalancer IP still reaches every endpoint, as
//! kube-proxy's short-circuit does); a port whose protocol the datapath cannot serve (SCTP) is
//! reported, not programmed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::maps::{
    FrontendId, F_EXTERNAL, F_NODEPORT, IPPROTO_TCP, IPPROTO_UDP, SCOPE_ALL, SCOPE_EXT,
};

/// upstream's default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 h).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10_800;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    /// `namespace/name:port-name`, for logs and the debug listing.
    pub service: String,
    pub address: Ipv4Addr,
    pub port: u16,
    pub proto: u8,
    /// `SCOPE_ALL`, or `SCOPE_EXT` for the node-local set of `externalTrafficPolicy: Local`.
    pub scope: u8,
    /// `F_EXTERNAL`, `F_NODEPORT`.
    pub flags: u32,
    /// Sorted, so an unchanged set compares equal and keeps its slots.
    pub backends: Vec<(Ipv4Addr, u16)>,
    pub affinity_timeout: u32,
}

impl Frontend {
    pub fn id(&self) -> FrontendId {
        (self.address, self.port, self.proto, self.scope)
    }

    /// How the debug listing names the frontend's kind.
    pub fn kind(&self) -> &'static str {
        match (self.flags & F_NODEPORT != 0, self.flags & F_EXTERNAL != 0) {
            (true, _) => "NodePort",
            (false, true) => "External",
            _ => "ClusterIP",
        }
    }
}

/// Ports the datapath skipped, with why (for events).
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub service: String,
    pub reason: String,
    /// The Service, for the event.
    pub object: k8s_openapi::api::core::v1::ObjectReference,
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
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
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
    let node_ports = matches!(
        spec.type_.as_deref(),
        Some("NodePort") | Some("LoadBalancer")
    );
    // Addresses served like a NodePort but by exact address: LoadBalancer ingress IPs (when
    // the type still is LoadBalancer) and externalIPs.
    let mut external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if spec.type_.as_deref() == Some("LoadBalancer") {
        external_ips.extend(
            service
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()),
        );
    }
    external_ips.sort();
    external_ips.dedup();
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
                object: skiff_events::reference(service),
                reason: format!(
                    "protocol {} is not supported by the service proxy",
                    port.protocol.as_deref().unwrap_or_default()
                ),
            });
            continue;
        };
        let protocol_name = port.protocol.as_deref().unwrap_or("TCP");
        let all = backends_for(slices, &port_name, protocol_name, false, node);
        let local = backends_for(slices, &port_name, protocol_name, true, node);
        let frontend =
            |address, port: u16, scope, flags, backends: &Vec<(Ipv4Addr, u16)>| Frontend {
                service: label.clone(),
                address,
                port,
                proto,
                scope,
                flags,
                backends: backends.clone(),
                affinity_timeout,
            };
        let cluster_backends = if internal_local { &local } else { &all };
        for ip in &ips {
            out.push(frontend(
                *ip,
                port.port as u16,
                SCOPE_ALL,
                0,
                cluster_backends,
            ));
        }
        let mut outside = Vec::new();
        if let Some(node_port) = port.node_port.filter(|_| node_ports) {
            outside.push((
                Ipv4Addr::UNSPECIFIED,
                node_port as u16,
                F_EXTERNAL | F_NODEPORT,
            ));
        }
        for ip in &external_ips {
            outside.push((*ip, port.port as u16, F_EXTERNAL));
        }
        for (address, number, flags) in outside {
            out.push(frontend(address, number, SCOPE_ALL, flags, &all));
            if external_local {
                out.push(frontend(address, number, SCOPE_EXT, flags, &local));
            }
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
        for endpoint in slice.endpoints.iter().flatten() {
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

/// Ready endpoints that name their node, per Service `(namespace, name)`: `(node, address)`
/// pairs (which nodes can serve a Service; how many endpoints a node has).
pub fn ready_endpoints_by_node<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> BTreeMap<(String, String), std::collections::BTreeSet<(String, String)>> {
    let mut out: BTreeMap<(String, String), std::collections::BTreeSet<(String, String)>> =
        BTreeMap::new();
    for slice in slices {
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
        else {
            continue;
        };
        let key = (
            slice.metadata.namespace.clone().unwrap_or_default(),
            service.clone(),
        );
        for endpoint in slice.endpoints.iter().flatten() {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if let (true, Some(node)) = (ready, endpoint.node_name.as_ref()) {
                let entry = out.entry(key.clone()).or_default();
                for address in &endpoint.addresses {
                    entry.insert((node.clone(), address.clone()));
                }
            }
        }
    }
    out
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

    #[test]
    fn node_ports_load_balancer_ips_and_external_ips_are_served_from_outside() {
        let mut svc = service(json!({
            "type": "LoadBalancer", "clusterIP": "10.96.0.30", "externalTrafficPolicy": "Local",
            "externalIPs": ["192.168.56.90"],
            "ports": [{"port": 80, "nodePort": 30080}],
        }));
        svc.status = serde_json::from_value(
            json!({"loadBalancer": {"ingress": [{"ip": "192.168.56.200"}]}}),
        )
        .unwrap();
        let s = slice(
            json!([{"port": 8080}]),
            json!([
                {"addresses": ["10.244.1.5"], "nodeName": "n1"},
                {"addresses": ["10.244.2.5"], "nodeName": "n2"},
            ]),
        );
        let mut skipped = Vec::new();
        let f = all_frontends([&svc], [&s], "n1", &mut skipped);
        let find = |address: [u8; 4], port, scope| {
            f.iter()
                .find(|f| f.id() == (Ipv4Addr::from(address), port, IPPROTO_TCP, scope))
                .unwrap_or_else(|| panic!("no {address:?}:{port}/{scope} in {f:#?}"))
        };
        // ClusterIP: every endpoint, not served from outside.
        assert_eq!(find([10, 96, 0, 30], 80, SCOPE_ALL).backends.len(), 2);
        assert_eq!(find([10, 96, 0, 30], 80, SCOPE_ALL).flags, 0);
        for (address, port) in [
            ([0, 0, 0, 0], 30080),
            ([192, 168, 56, 200], 80),
            ([192, 168, 56, 90], 80),
        ] {
            // In-cluster: every endpoint; from outside (Local): this node's only.
            let all = find(address, port, SCOPE_ALL);
            assert_eq!(all.backends.len(), 2);
            assert_ne!(all.flags & F_EXTERNAL, 0);
            let ext = find(address, port, SCOPE_EXT);
            assert_eq!(ext.backends, vec![(Ipv4Addr::new(10, 244, 1, 5), 8080)]);
        }
        assert_eq!(find([0, 0, 0, 0], 30080, SCOPE_ALL).kind(), "NodePort");
        assert_eq!(f.len(), 7);
        // Cluster policy: no EXT scope; a ClusterIP Service gets no NodePort even with one set.
        let cluster = service(json!({
            "type": "NodePort", "clusterIP": "10.96.0.31", "ports": [{"port": 80, "nodePort": 30081}],
        }));
        let f = all_frontends([&cluster], [&s], "n1", &mut skipped);
        assert_eq!(f.len(), 2);
        assert!(f.iter().all(|f| f.scope == SCOPE_ALL));
        let plain = service(json!({
            "clusterIP": "10.96.0.32", "ports": [{"port": 80, "nodePort": 30082}],
        }));
        assert_eq!(all_frontends([&plain], [&s], "n1", &mut skipped).len(), 1);
    }
}
