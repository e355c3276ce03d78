//! What the EndpointSlice and Endpoints controllers read from a Service and its pods (upstream
//! `pkg/api/v1/pod.FindPort`, `endpointslice/util.ShouldPodBeInEndpoints` and the hostname
//! rule both controllers share): which pods count, on which port a named targetPort lands, the
//! DNS hostname a pod gets under a service, and which pod changes matter at all.
//!
//! Kept apart from the two controllers so they cannot drift: upstream's Endpoints and
//! EndpointSlices list the same pods with the same ports, only in different shapes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::selector::Selector;

/// The service's pod selector; `None` for services the controllers leave alone: no selector
/// (their endpoints are someone else's, like `default/kubernetes`) or ExternalName.
///
/// An empty selector counts as none: upstream would match every pod of the namespace for
/// `selector: {}`, which the API server's clients never mean.
pub fn selector(service: &Service) -> Option<Selector> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    let map = spec.selector.as_ref().filter(|m| !m.is_empty())?;
    Some(Selector::from_map(map))
}

pub fn is_headless(service: &Service) -> bool {
    service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

pub fn publish_not_ready(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

pub fn ports(service: &Service) -> &[ServicePort] {
    service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default()
}

/// Whether the pod belongs in the service's endpoints at all (upstream
/// `ShouldPodBeInEndpoints`): it has an address, it has not finished for good (a Failed or
/// Succeeded pod that will not restart), and — unless `include_terminating` — it is not being
/// deleted.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let restart = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let finished = match restart {
        "Never" => matches!(phase, Some("Failed") | Some("Succeeded")),
        "OnFailure" => phase == Some("Succeeded"),
        _ => false,
    };
    !finished
        && ipv4(pod).is_some()
        && (include_terminating || pod.metadata.deletion_timestamp.is_none())
}

/// The pod's IPv4 address (skiff's services are single-stack IPv4).
pub fn ipv4(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let listed = status.pod_ips.iter().flatten().map(|ip| ip.ip.as_str());
    status
        .pod_ip
        .as_deref()
        .into_iter()
        .chain(listed)
        .find(|ip| !ip.is_empty() && ip.parse::<std::net::Ipv4Addr>().is_ok())
        .map(str::to_string)
}

/// The pod's Ready condition is True (upstream `podutil.IsPodReady`).
pub fn is_ready(pod: &Pod) -> bool {
    crate::pods::is_ready(pod)
}

/// The pod port a service port reaches (upstream `podutil.FindPort`): a number is used as it
/// is (none or 0: the service port itself); a name is looked up among the containers' ports
/// (sidecars included) with the service port's protocol. `None`: the pod has no such port and
/// is left out for this port.
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
        Some(IntOrString::Int(n)) if *n != 0 => Some(*n),
        _ => Some(port.port),
    }
}

/// The DNS hostname of the pod under this service: its `spec.hostname` when its
/// `spec.subdomain` names the service (what a StatefulSet's pods and a headless service do).
pub fn hostname(pod: &Pod, service: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == service.metadata.name.as_deref()
        && pod.metadata.namespace == service.metadata.namespace)
        .then(|| hostname.to_string())
}

/// `targetRef` of an endpoint: the pod.
pub fn reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

/// What of a pod the endpoints depend on; a change elsewhere (a container restart count, a
/// probe's timestamp) syncs no service.
fn relevant(pod: &Pod) -> impl PartialEq + '_ {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    (
        &pod.metadata.labels,
        pod.metadata.deletion_timestamp.is_some(),
        ipv4(pod),
        is_ready(pod),
        status.and_then(|s| s.phase.as_deref()),
        spec.and_then(|s| s.node_name.as_deref()),
        spec.and_then(|s| s.hostname.as_deref()),
        spec.and_then(|s| s.subdomain.as_deref()),
        spec.map(|s| {
            s.containers
                .iter()
                .map(|c| &c.ports)
                .collect::<Vec<&Option<Vec<_>>>>()
        }),
    )
}

pub fn changed(old: &Pod, new: &Pod) -> bool {
    relevant(old) != relevant(new)
}

/// The labels a controller puts on what it writes for a service: the service's own, without
/// the keys the controller sets itself.
pub fn copied_labels(service: &Service, reserved: &[&str]) -> BTreeMap<String, String> {
    service
        .metadata
        .labels
        .iter()
        .flatten()
        .filter(|(k, _)| !reserved.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
pub mod testing {
    //! Services and pods for the endpoint controllers' unit tests.
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, Pod, PodCondition, PodSpec, PodStatus, Service, ServicePort,
        ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    pub fn service(name: &str, ports: &[(&str, i32, IntOrString)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(BTreeMap::from([("app".to_string(), name.to_string())])),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, port, target)| ServicePort {
                            name: Some(n.to_string()),
                            port: *port,
                            protocol: Some("TCP".into()),
                            target_port: Some(target.clone()),
                            ..ServicePort::default()
                        })
                        .collect(),
                ),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    /// A running pod on `node` with one container whose ports are `(name, number)`.
    pub fn pod(name: &str, ip: &str, node: &str, ready: bool, ports: &[(&str, i32)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(
                        ports
                            .iter()
                            .map(|(n, p)| ContainerPort {
                                name: Some(n.to_string()),
                                container_port: *p,
                                ..ContainerPort::default()
                            })
                            .collect(),
                    ),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: (!ip.is_empty()).then(|| ip.to_string()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(jiff::Timestamp::UNIX_EPOCH)),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }

    pub fn named(name: &str) -> IntOrString {
        IntOrString::String(name.into())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn named_target_ports_resolve_per_pod_by_name_and_protocol() {
        let svc = service("web", &[("http", 80, named("http"))]);
        let port = &ports(&svc)[0];
        assert_eq!(
            find_port(&pod("a", "10.0.0.1", "n", true, &[("http", 8080)]), port),
            Some(8080)
        );
        assert_eq!(
            find_port(&pod("b", "10.0.0.2", "n", true, &[("http", 9090)]), port),
            Some(9090)
        );
        assert_eq!(
            find_port(&pod("c", "10.0.0.3", "n", true, &[("web", 8080)]), port),
            None
        );
        let mut udp = port.clone();
        udp.protocol = Some("UDP".into());
        assert_eq!(
            find_port(&pod("a", "10.0.0.1", "n", true, &[("http", 8080)]), &udp),
            None
        );
        let mut number = port.clone();
        number.target_port = Some(IntOrString::Int(8443));
        assert_eq!(
            find_port(&pod("a", "", "n", true, &[]), &number),
            Some(8443)
        );
        number.target_port = None;
        assert_eq!(find_port(&pod("a", "", "n", true, &[]), &number), Some(80));
    }

    #[test]
    fn which_pods_count() {
        let mut p = pod("a", "10.0.0.1", "n", false, &[]);
        assert!(should_be_in_endpoints(&p, false));
        p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::UNIX_EPOCH,
        ));
        assert!(!should_be_in_endpoints(&p, false));
        assert!(should_be_in_endpoints(&p, true));
        assert!(!should_be_in_endpoints(&pod("b", "", "n", true, &[]), true));
        let mut done = pod("c", "10.0.0.3", "n", false, &[]);
        done.spec.as_mut().unwrap().restart_policy = Some("Never".into());
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!should_be_in_endpoints(&done, true));
        // Always restarts: a Failed phase is a moment, the pod stays listed.
        done.spec.as_mut().unwrap().restart_policy = Some("Always".into());
        assert!(should_be_in_endpoints(&done, true));
    }

    #[test]
    fn hostname_only_under_the_named_subdomain() {
        let svc = service("db", &[]);
        let mut p = pod("db-0", "10.0.0.1", "n", true, &[]);
        assert_eq!(hostname(&p, &svc), None);
        p.spec.as_mut().unwrap().hostname = Some("db-0".into());
        assert_eq!(hostname(&p, &svc), None);
        p.spec.as_mut().unwrap().subdomain = Some("db".into());
        assert_eq!(hostname(&p, &svc).as_deref(), Some("db-0"));
        p.spec.as_mut().unwrap().subdomain = Some("other".into());
        assert_eq!(hostname(&p, &svc), None);
    }

    #[test]
    fn services_left_alone() {
        let mut svc = service("web", &[]);
        assert!(selector(&svc).is_some());
        svc.spec.as_mut().unwrap().selector = None;
        assert!(selector(&svc).is_none());
        let mut external = service("ext", &[]);
        external.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        assert!(selector(&external).is_none());
    }
}
