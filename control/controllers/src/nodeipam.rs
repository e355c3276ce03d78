//! Node IPAM (upstream `pkg/controller/nodeipam`, the range allocator): every Node gets a
//! slice of the cluster's pod network as `spec.podCIDR`/`spec.podCIDRs` — `/24`s of
//! `10.244.0.0/16` by default — which the node's CNI plugin hands out to its pods and the
//! overlay routes to. A range stays with its node until the Node is deleted.
//!
//! The allocated set is rebuilt from the Nodes themselves (the only durable record, as
//! upstream), so a restarted or newly elected controller never hands out a range twice. A
//! full cluster network is an event on the Node (`CIDRNotAvailable`, upstream's reason) and a
//! retry when a node leaves.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher::{self, watcher, Event};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::events::Recorder;

/// What `--cluster-cidr` and `--node-cidr-mask-size` say.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    pub cluster_network: Ipv4Addr,
    pub cluster_prefix: u8,
    pub node_prefix: u8,
}

impl Config {
    /// Parses `10.244.0.0/16` and a node mask size.
    pub fn new(cluster_cidr: &str, node_prefix: u8) -> anyhow::Result<Config> {
        let (ip, prefix) = cluster_cidr
            .split_once('/')
            .ok_or_else(|| anyhow::anyhow!("--cluster-cidr {cluster_cidr:?} is not a CIDR"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| {
            anyhow::anyhow!("--cluster-cidr {cluster_cidr:?}: only IPv4 is supported")
        })?;
        let prefix: u8 =
            prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(|| {
                anyhow::anyhow!("--cluster-cidr {cluster_cidr:?}: bad prefix length")
            })?;
        anyhow::ensure!(
            prefix <= node_prefix && node_prefix <= 30 && node_prefix - prefix <= 16,
            "--node-cidr-mask-size {node_prefix} does not fit --cluster-cidr {cluster_cidr}"
        );
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        };
        Ok(Config {
            cluster_network: Ipv4Addr::from(u32::from(ip) & mask),
            cluster_prefix: prefix,
            node_prefix,
        })
    }

    fn ranges(&self) -> u32 {
        1 << (self.node_prefix - self.cluster_prefix)
    }

    /// The `i`-th node range.
    pub fn range(&self, i: u32) -> String {
        let base = u32::from(self.cluster_network) + (i << (32 - self.node_prefix));
        format!("{}/{}", Ipv4Addr::from(base), self.node_prefix)
    }

    /// Which range `cidr` is, if it is one of ours.
    pub fn index_of(&self, cidr: &str) -> Option<u32> {
        (0..self.ranges()).find(|i| self.range(*i) == cidr)
    }
}

/// The allocator's state: node → range index.
#[derive(Debug, Default)]
pub struct Allocations {
    by_node: BTreeMap<String, u32>,
    used: BTreeSet<u32>,
}

impl Allocations {
    /// Records a node's existing range (from its spec).
    pub fn observe(&mut self, config: &Config, node: &str, pod_cidr: &str) {
        if let Some(i) = config.index_of(pod_cidr) {
            self.forget(node);
            self.by_node.insert(node.to_string(), i);
            self.used.insert(i);
        }
    }

    pub fn forget(&mut self, node: &str) {
        if let Some(i) = self.by_node.remove(node) {
            self.used.remove(&i);
        }
    }

    /// The lowest free range for `node`.
    pub fn allocate(&mut self, config: &Config, node: &str) -> Option<String> {
        let i = (0..config.ranges()).find(|i| !self.used.contains(i))?;
        self.by_node.insert(node.to_string(), i);
        self.used.insert(i);
        Some(config.range(i))
    }
}

fn pod_cidr(node: &Node) -> Option<String> {
    node.spec
        .as_ref()?
        .pod_cidr
        .clone()
        .filter(|c| !c.is_empty())
}

/// Runs the allocator until the watch ends.
pub async fn run(client: Client, config: Config, recorder: Recorder) {
    let recorder = recorder.for_component("node-ipam-controller");
    let api: Api<Node> = Api::all(client);
    let mut state = Allocations::default();
    // Nodes seen without a range; retried whenever something changes.
    let mut waiting: BTreeMap<String, Node> = BTreeMap::new();
    let mut initial: Vec<Node> = Vec::new();
    let mut synced = false;
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => {
                initial.clear();
                synced = false;
            }
            Ok(Event::InitApply(node)) => initial.push(node),
            Ok(Event::InitDone) => {
                // Everything already allocated is known before anything new is handed out.
                state = Allocations::default();
                waiting.clear();
                for node in initial.drain(..) {
                    match pod_cidr(&node) {
                        Some(cidr) => state.observe(&config, &node.name_any(), &cidr),
                        None => {
                            waiting.insert(node.name_any(), node);
                        }
                    }
                }
                synced = true;
            }
            Ok(Event::Apply(node)) => match pod_cidr(&node) {
                Some(cidr) => {
                    waiting.remove(&node.name_any());
                    state.observe(&config, &node.name_any(), &cidr);
                }
                None => {
                    state.forget(&node.name_any());
                    waiting.insert(node.name_any(), node);
                }
            },
            Ok(Event::Delete(node)) => {
                state.forget(&node.name_any());
                waiting.remove(&node.name_any());
            }
            Err(e) => {
                tracing::warn!("watching nodes: {e}");
                continue;
            }
        }
        if !synced {
            continue;
        }
        let pending: Vec<Node> = waiting.values().cloned().collect();
        for node in pending {
            let name = node.name_any();
            let Some(cidr) = state.allocate(&config, &name) else {
                recorder.publish(
                    &node,
                    "Normal",
                    "CIDRNotAvailable",
                    format!("Node {name} status is now: CIDRNotAvailable"),
                );
                waiting.remove(&name);
                continue;
            };
            let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(node = %name, %cidr, "allocated the node's pod range");
                    waiting.remove(&name);
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    state.forget(&name);
                    waiting.remove(&name);
                }
                Err(e) => {
                    // Retried on the next event (the node's heartbeat brings one every 10 s).
                    tracing::warn!(node = %name, "setting spec.podCIDR: {e}");
                    state.forget(&name);
                    recorder.publish(
                        &node,
                        "Warning",
                        "CIDRAssignmentFailed",
                        format!("Node {name} status is now: CIDRAssignmentFailed"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_handed_out_once_and_reused_after_a_node_leaves() {
        let config = Config::new("10.244.0.0/16", 24).unwrap();
        assert_eq!(config.range(0), "10.244.0.0/24");
        assert_eq!(config.range(3), "10.244.3.0/24");
        let mut state = Allocations::default();
        state.observe(&config, "a", "10.244.0.0/24");
        state.observe(&config, "b", "10.244.2.0/24");
        assert_eq!(
            state.allocate(&config, "c").as_deref(),
            Some("10.244.1.0/24")
        );
        assert_eq!(
            state.allocate(&config, "d").as_deref(),
            Some("10.244.3.0/24")
        );
        state.forget("a");
        assert_eq!(
            state.allocate(&config, "e").as_deref(),
            Some("10.244.0.0/24")
        );
        // A range outside the cluster network is not ours to track.
        state.observe(&config, "f", "192.168.0.0/24");
        assert_eq!(
            state.allocate(&config, "g").as_deref(),
            Some("10.244.4.0/24")
        );
    }

    #[test]
    fn a_full_network_allocates_nothing_and_bad_flags_are_refused() {
        let config = Config::new("10.245.0.0/23", 24).unwrap();
        let mut state = Allocations::default();
        assert!(state.allocate(&config, "a").is_some());
        assert!(state.allocate(&config, "b").is_some());
        assert_eq!(state.allocate(&config, "c"), None);
        assert!(Config::new("10.244.0.0/16", 8).is_err());
        assert!(Config::new("fd00::/64", 80).is_err());
        assert!(Config::new("10.244.0.0", 24).is_err());
        assert_eq!(
            Config::new("10.244.7.9/16", 24).unwrap().range(1),
            "10.244.1.0/24"
        );
    }
}
