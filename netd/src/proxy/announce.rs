//! LoadBalancer IPs on the node network (the L2 mode of MetalLB and k3s's ServiceLB): exactly
//! one live node answers ARP for each IP, and another takes over when it dies.
//!
//! - Liveness: every agent renews its own Lease `kube-node-lease/skiff-netd-<node>` every
//!   [`RENEW`]; a node counts as alive while its Lease changed within [`LEASE_SECONDS`] *as
//!   this agent observed it* (client-go's observed-time rule: clock skew between nodes does not
//!   matter). The kubelet's node Lease (40 s) would make a failover take 40 s; MetalLB's
//!   memberlist notices in seconds, and so does this.
//! - Election: per IP, among the alive nodes that may serve it (with
//!   `externalTrafficPolicy: Local`, only nodes with a local endpoint, as MetalLB does), the
//!   node with the highest hash of (IP, node name) — every agent computes the same answer
//!   without talking to the others, and a node joining or leaving moves only its share of IPs.
//! - Announcing: the IP goes into the datapath's announce map (the tc program answers ARP
//!   requests in the kernel, so answers keep coming while the agent restarts), and a
//!   gratuitous ARP tells the network at once when the IP moves here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;

pub const LEASE_NAMESPACE: &str = "kube-node-lease";
pub const LEASE_PREFIX: &str = "skiff-netd-";
pub const LEASE_SECONDS: u64 = 10;
pub const RENEW: Duration = Duration::from_secs(2);

/// When this agent last saw each node's heartbeat change.
#[derive(Default)]
pub struct Liveness {
    seen: HashMap<String, (String, Instant)>,
}

impl Liveness {
    /// Records the Leases as listed now.
    pub fn observe<'a>(&mut self, leases: impl IntoIterator<Item = &'a Lease>) {
        let now = Instant::now();
        let mut present = BTreeSet::new();
        for lease in leases {
            let Some(node) = lease
                .metadata
                .name
                .as_deref()
                .and_then(|n| n.strip_prefix(LEASE_PREFIX))
            else {
                continue;
            };
            let renewed = lease
                .spec
                .as_ref()
                .and_then(|s| s.renew_time.as_ref())
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            present.insert(node.to_string());
            match self.seen.get_mut(node) {
                Some((last, _)) if *last == renewed => {}
                _ => {
                    self.seen.insert(node.to_string(), (renewed, now));
                }
            }
        }
        self.seen.retain(|node, _| present.contains(node));
    }

    /// Nodes whose heartbeat changed within the lease duration.
    pub fn alive(&self) -> BTreeSet<String> {
        let limit = Duration::from_secs(LEASE_SECONDS);
        self.seen
            .iter()
            .filter(|(_, (_, at))| at.elapsed() < limit)
            .map(|(node, _)| node.clone())
            .collect()
    }
}

/// FNV-1a over the IP and the node name: the election's score.
fn score(ip: Ipv4Addr, node: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in ip.octets().iter().chain(b"/").chain(node.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The LoadBalancer IPs `me` should announce, given the live nodes.
pub fn elected<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
    alive: &BTreeSet<String>,
    me: &str,
) -> BTreeSet<Ipv4Addr> {
    // Nodes with a ready endpoint, per service.
    let hosts: BTreeMap<(String, String), BTreeSet<String>> =
        super::model::ready_endpoints_by_node(slices)
            .into_iter()
            .map(|(key, endpoints)| (key, endpoints.into_iter().map(|(node, _)| node).collect()))
            .collect();
    let mut mine = BTreeSet::new();
    for service in services {
        let Some(spec) = service.spec.as_ref() else {
            continue;
        };
        if spec.type_.as_deref() != Some("LoadBalancer") {
            continue;
        }
        let key = (
            service.metadata.namespace.clone().unwrap_or_default(),
            service.metadata.name.clone().unwrap_or_default(),
        );
        let empty = BTreeSet::new();
        let candidates: Vec<&String> = if spec.external_traffic_policy.as_deref() == Some("Local") {
            let local = hosts.get(&key).unwrap_or(&empty);
            alive.iter().filter(|n| local.contains(*n)).collect()
        } else {
            alive.iter().collect()
        };
        let ips = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok());
        for ip in ips {
            let winner = candidates.iter().max_by_key(|n| (score(ip, n), n.as_str()));
            if winner.map(|w| w.as_str()) == Some(me) {
                mine.insert(ip);
            }
        }
    }
    mine
}

/// Renews `kube-node-lease/skiff-netd-<node>` forever (creates it when missing).
pub async fn heartbeat(client: Client, node: String) {
    let api: Api<Lease> = Api::namespaced(client, LEASE_NAMESPACE);
    let name = format!("{LEASE_PREFIX}{node}");
    let mut ticker = tokio::time::interval(RENEW);
    loop {
        ticker.tick().await;
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(jiff::Timestamp::now());
        let lease: Lease = match serde_json::from_value(serde_json::json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": LEASE_NAMESPACE,
                         "labels": {"app.kubernetes.io/component": "skiff-netd"}},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_SECONDS,
                     "renewTime": now},
        })) {
            Ok(lease) => lease,
            Err(e) => {
                tracing::error!("building the heartbeat Lease: {e}");
                return;
            }
        };
        let patch = serde_json::json!({"spec": {"renewTime": now, "holderIdentity": node}});
        let result = match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Err(kube::Error::Api(e)) if e.code == 404 => {
                api.create(&PostParams::default(), &lease).await.map(|_| ())
            }
            other => other.map(|_| ()),
        };
        if let Err(e) = result {
            tracing::warn!("renewing the heartbeat Lease {LEASE_NAMESPACE}/{name}: {e}");
        }
    }
}

/// Sends a gratuitous ARP reply for `ip` from `iface` (MAC `mac`), so neighbours move their
/// entry to this node at once.
pub fn gratuitous_arp(iface: &str, mac: [u8; 6], ip: Ipv4Addr) -> anyhow::Result<()> {
    let index =
        nix::net::if_::if_nametoindex(iface).with_context(|| format!("no interface {iface}"))?;
    let mut frame = Vec::with_capacity(42);
    frame.extend_from_slice(&[0xff; 6]); // broadcast
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&0x0806u16.to_be_bytes()); // ARP
    frame.extend_from_slice(&1u16.to_be_bytes()); // Ethernet
    frame.extend_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    frame.extend_from_slice(&[6, 4]);
    frame.extend_from_slice(&2u16.to_be_bytes()); // reply
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&ip.octets());
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&ip.octets());
    // SAFETY: a plain socket(2) call; the fd is owned (and closed) by `OwnedFd` below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).context("opening a packet socket");
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid starting value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = 0x0806u16.to_be();
    addr.sll_ifindex = index as i32;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    // SAFETY: `frame` and `addr` outlive the call; the lengths are theirs.
    let sent = unsafe {
        libc::sendto(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("sending a gratuitous ARP for {ip} on {iface}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lb(name: &str, ip: &str, local: bool) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": if local {"Local"} else {"Cluster"}},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
        }))
        .unwrap()
    }

    #[test]
    fn exactly_one_alive_node_announces_each_ip_and_local_policy_needs_an_endpoint() {
        let nodes: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        let services: Vec<Service> = (0..20)
            .map(|i| lb(&format!("s{i}"), &format!("192.168.56.{}", 200 + i), false))
            .collect();
        let per_node: Vec<BTreeSet<Ipv4Addr>> = nodes
            .iter()
            .map(|n| elected(&services, [], &nodes, n))
            .collect();
        let total: usize = per_node.iter().map(BTreeSet::len).sum();
        assert_eq!(total, 20, "every IP exactly once: {per_node:?}");
        assert!(
            per_node.iter().all(|s| !s.is_empty()),
            "spread: {per_node:?}"
        );
        // "a" dies: its IPs move, the others stay where they were.
        let rest: BTreeSet<String> = ["b", "c"].map(String::from).into();
        let b_after = elected(&services, [], &rest, "b");
        assert!(b_after.is_superset(&per_node[1]));
        assert_eq!(b_after.len() + elected(&services, [], &rest, "c").len(), 20);
        // Local policy: only the node with the endpoint.
        let local = lb("web", "192.168.56.250", true);
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "web-x", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.2.3"], "nodeName": "c", "conditions": {"ready": true}}],
        }))
        .unwrap();
        for n in ["a", "b"] {
            assert!(elected([&local], [&slice], &nodes, n).is_empty());
        }
        assert_eq!(elected([&local], [&slice], &nodes, "c").len(), 1);
        assert!(elected([&local], [&slice], &rest, "b").is_empty());
    }

    #[test]
    fn a_lease_that_stops_changing_is_alive_until_it_is_observed_stale() {
        let lease = |node: &str, t: &str| -> Lease {
            serde_json::from_value(json!({
                "metadata": {"name": format!("{LEASE_PREFIX}{node}"), "namespace": LEASE_NAMESPACE},
                "spec": {"renewTime": t},
            }))
            .unwrap()
        };
        let mut liveness = Liveness::default();
        liveness.observe(&[lease("a", "2026-01-01T00:00:00.000000Z")]);
        assert!(liveness.alive().contains("a"));
        // Pretend the last change was long ago.
        liveness.seen.get_mut("a").unwrap().1 =
            Instant::now() - Duration::from_secs(LEASE_SECONDS + 1);
        liveness.observe(&[lease("a", "2026-01-01T00:00:00.000000Z")]);
        assert!(liveness.alive().is_empty());
        liveness.observe(&[lease("a", "2026-01-01T00:00:02.000000Z")]);
        assert!(liveness.alive().contains("a"));
        liveness.observe(&[]);
        assert!(liveness.alive().is_empty());
    }
}
