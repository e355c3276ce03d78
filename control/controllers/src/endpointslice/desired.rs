//! The endpoints a service should have, grouped by port set (upstream `endpointslice`
//! `reconciler.go` `reconcile` + `utils.go` `podToEndpoint` / `getEndpointPorts`).
//!
//! Every pod becomes one endpoint (its IPv4 address, conditions, node, zone, hostname,
//! targetRef). Its ports are the service's ports as that pod resolves them: a named targetPort
//! can land on different numbers in different pods, and a pod without the named port has that
//! port left out. Endpoints with the same resolved ports share slices; a different port set
//! means different slices, since a slice carries one port list for all its endpoints.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};

use crate::service_pods;

/// One port set's endpoints, in pod order.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub ports: Vec<EndpointPort>,
    pub endpoints: Vec<Endpoint>,
}

/// The key slices are matched on: the port list as written.
pub fn port_key(ports: &[EndpointPort]) -> String {
    serde_json::to_string(ports).unwrap_or_default()
}

/// The identity of an endpoint across syncs: its pod (or, without targetRef, its address).
pub fn endpoint_key(endpoint: &Endpoint) -> String {
    endpoint
        .target_ref
        .as_ref()
        .and_then(|r| r.uid.clone().or_else(|| r.name.clone()))
        .unwrap_or_else(|| endpoint.addresses.join(","))
}

/// The service's ports as this pod serves them (those it cannot serve left out).
pub fn ports_for(pod: &Pod, service: &Service) -> Vec<EndpointPort> {
    service_pods::ports(service)
        .iter()
        .filter_map(|port| {
            let number = service_pods::find_port(pod, port)?;
            Some(EndpointPort {
                name: Some(port.name.clone().unwrap_or_default()),
                port: Some(number),
                protocol: Some(port.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: port.app_protocol.clone(),
            })
        })
        .collect()
}

/// The endpoint of one pod: `serving` is the pod's readiness, `terminating` its deletion,
/// `ready` serving and not terminating — or always, with `publishNotReadyAddresses`.
pub fn endpoint_for(pod: &Pod, service: &Service, zone: Option<String>) -> Option<Endpoint> {
    let address = service_pods::ipv4(pod)?;
    let serving = service_pods::is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let ready = service_pods::publish_not_ready(service) || (serving && !terminating);
    Some(Endpoint {
        addresses: vec![address],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: service_pods::hostname(pod, service),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        zone,
        target_ref: Some(service_pods::reference(pod)),
        ..Endpoint::default()
    })
}

/// The desired endpoints of `service` from the pods its selector matches, grouped by port
/// set (keyed by [`port_key`]). `zone_of` gives a node's `topology.kubernetes.io/zone`.
pub fn desired<'a>(
    service: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
    zone_of: impl Fn(&str) -> Option<String>,
) -> BTreeMap<String, Group> {
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for pod in pods {
        // Terminating pods stay listed (ready=false, terminating=true) so proxies can drain.
        if !service_pods::should_be_in_endpoints(pod, true) {
            continue;
        }
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let zone = node.and_then(&zone_of);
        let Some(endpoint) = endpoint_for(pod, service, zone) else {
            continue;
        };
        let ports = ports_for(pod, service);
        groups
            .entry(port_key(&ports))
            .or_insert_with(|| Group {
                ports,
                endpoints: Vec::new(),
            })
            .endpoints
            .push(endpoint);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_pods::testing::{named, pod, service};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    #[test]
    fn pods_group_by_the_ports_they_resolve() {
        let svc = service(
            "web",
            &[
                ("http", 80, named("http")),
                ("metrics", 9100, IntOrString::Int(9100)),
            ],
        );
        let pods = [
            pod("a", "10.0.0.1", "n1", true, &[("http", 8080)]),
            pod("b", "10.0.0.2", "n2", true, &[("http", 8080)]),
            pod("c", "10.0.0.3", "n1", true, &[("http", 9090)]),
            pod("d", "10.0.0.4", "n1", true, &[]),
            pod("e", "", "n1", true, &[("http", 8080)]),
        ];
        let groups = desired(&svc, &pods, |n| (n == "n1").then(|| "zone-a".to_string()));
        let shapes: Vec<(Vec<i32>, Vec<&str>)> = groups
            .values()
            .map(|g| {
                (
                    g.ports.iter().filter_map(|p| p.port).collect(),
                    g.endpoints
                        .iter()
                        .map(|e| e.addresses[0].as_str())
                        .collect(),
                )
            })
            .collect();
        let mut shapes = shapes;
        shapes.sort();
        assert_eq!(
            shapes,
            vec![
                (vec![8080, 9100], vec!["10.0.0.1", "10.0.0.2"]),
                (vec![9090, 9100], vec!["10.0.0.3"]),
                // d has no port named http: only the numeric port.
                (vec![9100], vec!["10.0.0.4"]),
            ]
        );
        let a = &groups[&port_key(&ports_for(&pods[0], &svc))].endpoints[0];
        assert_eq!(a.zone.as_deref(), Some("zone-a"));
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        let target = a.target_ref.as_ref().unwrap();
        assert_eq!(
            (
                target.kind.as_deref(),
                target.name.as_deref(),
                target.uid.as_deref()
            ),
            (Some("Pod"), Some("a"), Some("uid-a"))
        );
        let b = &groups[&port_key(&ports_for(&pods[1], &svc))].endpoints[1];
        assert_eq!(b.zone, None);
        let port = &groups[&port_key(&ports_for(&pods[0], &svc))].ports[0];
        assert_eq!(
            (port.name.as_deref(), port.protocol.as_deref()),
            (Some("http"), Some("TCP"))
        );
    }

    #[test]
    fn conditions_ready_serving_terminating() {
        let mut svc = service("web", &[("", 80, IntOrString::Int(8080))]);
        let conditions = |p: &Pod, s: &Service| {
            let c = endpoint_for(p, s, None).unwrap().conditions.unwrap();
            (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
        };
        let ready = pod("a", "10.0.0.1", "n", true, &[]);
        let not_ready = pod("b", "10.0.0.2", "n", false, &[]);
        let mut terminating = pod("c", "10.0.0.3", "n", true, &[]);
        terminating.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(conditions(&ready, &svc), (true, true, false));
        assert_eq!(conditions(&not_ready, &svc), (false, false, false));
        assert_eq!(conditions(&terminating, &svc), (false, true, true));
        // Terminating pods stay in the slices.
        let groups = desired(&svc, [&ready, &not_ready, &terminating], |_| None);
        assert_eq!(groups.values().next().unwrap().endpoints.len(), 3);

        svc.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        assert_eq!(conditions(&not_ready, &svc), (true, false, false));
        assert_eq!(conditions(&terminating, &svc), (true, true, true));
    }
}
