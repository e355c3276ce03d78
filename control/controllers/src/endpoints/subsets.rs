//! The subsets of a service's core/v1 Endpoints (upstream `endpoints_controller.go`
//! `syncService`, `addEndpointSubset`, `RepackSubsets` and `truncateEndpoints`). Pure.
//!
//! Each pod is an address — in `addresses` when Ready (or when the service publishes
//! not-ready addresses), else in `notReadyAddresses` — reachable on the service's ports as that
//! pod resolves them. Addresses with the same port set share a subset. Terminating pods are
//! left out unless the service publishes not-ready addresses (the Endpoints API has no
//! terminating state; EndpointSlices keep them).
//!
//! An Endpoints object holds at most 1000 addresses: beyond that the controller keeps the
//! ready ones first, shares the room among subsets in proportion, and the writer marks the
//! object `endpoints.kubernetes.io/over-capacity: truncated`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EndpointAddress, EndpointPort, EndpointSubset, Pod, Service};

use crate::service_pods;

/// Addresses an Endpoints object holds at most (upstream `maxCapacity`).
pub const MAX_CAPACITY: usize = 1000;

fn ports_for(pod: &Pod, service: &Service) -> Vec<EndpointPort> {
    let mut ports: Vec<EndpointPort> = service_pods::ports(service)
        .iter()
        .filter_map(|port| {
            Some(EndpointPort {
                name: port.name.clone().filter(|n| !n.is_empty()),
                port: service_pods::find_port(pod, port)?,
                protocol: Some(port.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: port.app_protocol.clone(),
            })
        })
        .collect();
    ports.sort_by(|a, b| (&a.name, a.port, &a.protocol).cmp(&(&b.name, b.port, &b.protocol)));
    ports
}

fn address(pod: &Pod, service: &Service, ip: String) -> EndpointAddress {
    EndpointAddress {
        ip,
        hostname: service_pods::hostname(pod, service),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        target_ref: Some(service_pods::reference(pod)),
    }
}

/// The service's subsets from the pods its selector matches, repacked by port set and sorted.
pub fn build<'a>(
    service: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Vec<EndpointSubset> {
    let publish = service_pods::publish_not_ready(service);
    let no_ports = service_pods::ports(service).is_empty();
    // port set (as JSON) → (ports, ready, not ready)
    type Packed = (
        Vec<EndpointPort>,
        Vec<EndpointAddress>,
        Vec<EndpointAddress>,
    );
    let mut packed: BTreeMap<String, Packed> = BTreeMap::new();
    for pod in pods {
        if !service_pods::should_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(ip) = service_pods::ipv4(pod) else {
            continue;
        };
        let ports = ports_for(pod, service);
        // A port-less service only lists addresses when headless (DNS needs them).
        if ports.is_empty() && !(no_ports && service_pods::is_headless(service)) {
            continue;
        }
        let entry = packed
            .entry(serde_json::to_string(&ports).unwrap_or_default())
            .or_insert_with(|| (ports, Vec::new(), Vec::new()));
        let address = address(pod, service, ip);
        if publish || service_pods::is_ready(pod) {
            entry.1.push(address);
        } else {
            entry.2.push(address);
        }
    }
    packed
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            let by_ip = |a: &EndpointAddress, b: &EndpointAddress| {
                let ip = |x: &EndpointAddress| x.ip.parse::<std::net::Ipv4Addr>().ok();
                (ip(a), &a.ip).cmp(&(ip(b), &b.ip))
            };
            ready.sort_by(by_ip);
            not_ready.sort_by(by_ip);
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// Cuts the subsets to `max` addresses (upstream `truncateEndpoints`); true if it had to.
/// Ready addresses go first: if they alone exceed `max`, they are shared out in proportion to
/// each subset's and the not-ready ones dropped; else the room left is shared among the
/// not-ready ones. The last subset gets the remainder.
pub fn truncate(subsets: &mut [EndpointSubset], max: usize) -> bool {
    let count = |v: &Option<Vec<EndpointAddress>>| v.as_ref().map_or(0, Vec::len);
    let ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if ready + not_ready <= max {
        return false;
    }
    let truncate_ready = ready > max;
    let (total, mut room) = if truncate_ready {
        (ready, max)
    } else {
        (not_ready, max - ready)
    };
    let last = subsets.len().saturating_sub(1);
    for (i, subset) in subsets.iter_mut().enumerate() {
        let list = if truncate_ready {
            subset.not_ready_addresses = None;
            &mut subset.addresses
        } else {
            &mut subset.not_ready_addresses
        };
        let here = count(list);
        let share = if i == last {
            room
        } else {
            (here * max).div_ceil(total.max(1)).min(room)
        };
        if let Some(addresses) = list {
            addresses.truncate(share);
            room -= addresses.len();
            if addresses.is_empty() {
                *list = None;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service_pods::testing::{named, pod, service};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn ips(v: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        v.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn ready_and_not_ready_addresses_repacked_by_port_set() {
        let svc = service("web", &[("http", 80, named("http"))]);
        let mut terminating = pod("t", "10.0.0.9", "n", true, &[("http", 8080)]);
        terminating.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        let pods = [
            pod("b", "10.0.0.10", "n", true, &[("http", 8080)]),
            pod("a", "10.0.0.2", "n", true, &[("http", 8080)]),
            pod("c", "10.0.0.3", "n", false, &[("http", 8080)]),
            pod("d", "10.0.0.4", "n", true, &[("http", 9090)]),
            pod("e", "10.0.0.5", "n", true, &[]),
            terminating,
        ];
        let subsets = build(&svc, &pods);
        assert_eq!(subsets.len(), 2);
        let s8080 = subsets
            .iter()
            .find(|s| s.ports.as_ref().unwrap()[0].port == 8080)
            .unwrap();
        assert_eq!(ips(&s8080.addresses), vec!["10.0.0.2", "10.0.0.10"]);
        assert_eq!(ips(&s8080.not_ready_addresses), vec!["10.0.0.3"]);
        let port = &s8080.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.protocol.as_deref()),
            (Some("http"), Some("TCP"))
        );
        let a = &s8080.addresses.as_ref().unwrap()[0];
        assert_eq!(a.node_name.as_deref(), Some("n"));
        assert_eq!(a.target_ref.as_ref().unwrap().name.as_deref(), Some("a"));

        // publishNotReadyAddresses: every pod is an address, terminating ones too.
        let mut publish = svc.clone();
        publish.spec.as_mut().unwrap().publish_not_ready_addresses = Some(true);
        let subsets = build(&publish, &pods);
        let s8080 = subsets
            .iter()
            .find(|s| s.ports.as_ref().unwrap()[0].port == 8080)
            .unwrap();
        assert_eq!(
            ips(&s8080.addresses),
            vec!["10.0.0.2", "10.0.0.3", "10.0.0.9", "10.0.0.10"]
        );
        assert!(s8080.not_ready_addresses.is_none());
    }

    #[test]
    fn headless_without_ports_lists_addresses_with_hostnames() {
        let mut svc = service("db", &[]);
        svc.spec.as_mut().unwrap().ports = None;
        let mut p = pod("db-0", "10.0.0.1", "n", true, &[]);
        p.spec.as_mut().unwrap().hostname = Some("db-0".into());
        p.spec.as_mut().unwrap().subdomain = Some("db".into());
        assert!(build(&svc, [&p]).is_empty(), "not headless: nothing");
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        let subsets = build(&svc, [&p]);
        assert_eq!(subsets.len(), 1);
        assert!(subsets[0].ports.is_none());
        assert_eq!(
            subsets[0].addresses.as_ref().unwrap()[0]
                .hostname
                .as_deref(),
            Some("db-0")
        );
    }

    #[test]
    fn truncation_keeps_ready_first_in_proportion() {
        let svc = service("web", &[("", 80, IntOrString::Int(8080))]);
        let pods: Vec<Pod> = (0..1200)
            .map(|i| {
                pod(
                    &format!("p{i}"),
                    &format!("10.0.{}.{}", i / 250, i % 250 + 1),
                    "n",
                    i < 900,
                    &[],
                )
            })
            .collect();
        let mut subsets = build(&svc, &pods);
        assert!(truncate(&mut subsets, MAX_CAPACITY));
        assert_eq!(subsets[0].addresses.as_ref().unwrap().len(), 900);
        assert_eq!(subsets[0].not_ready_addresses.as_ref().unwrap().len(), 100);

        let mut two = vec![
            EndpointSubset {
                addresses: Some(vec![EndpointAddress::default(); 1500]),
                not_ready_addresses: Some(vec![EndpointAddress::default(); 10]),
                ports: None,
            },
            EndpointSubset {
                addresses: Some(vec![EndpointAddress::default(); 500]),
                not_ready_addresses: None,
                ports: None,
            },
        ];
        assert!(truncate(&mut two, 1000));
        assert_eq!(two[0].addresses.as_ref().unwrap().len(), 750);
        assert_eq!(two[1].addresses.as_ref().unwrap().len(), 250);
        assert!(two[0].not_ready_addresses.is_none());
        assert!(!truncate(&mut two, 1000));
    }
}
