//! The local cluster's layout (DESIGN.md, "The local cluster"): names and addresses of the
//! outside-world namespace and of every node, in the order Vagrant would number its VMs.

use std::net::Ipv4Addr;
use std::path::PathBuf;

/// One node of the local cluster.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeSpec {
    /// The node's name, also its network namespace's name.
    pub name: String,
    pub ip: Ipv4Addr,
    pub control_plane: bool,
}

/// The whole layout.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Topology {
    pub name: String,
    /// `<name>-host`: where a Vagrant host would sit (the first address of the node network);
    /// it reaches the pod network through the first control plane, as a router would.
    pub host_netns: String,
    pub host_ip: Ipv4Addr,
    pub prefix_len: u8,
    pub nodes: Vec<NodeSpec>,
}

impl Topology {
    /// `nodes` nodes of which the first `control_planes` are control planes, on `node_cidr`
    /// (e.g. 192.168.56.0/24: host .1, first control plane .10, workers .11, …, extra control
    /// planes after the workers).
    pub fn new(
        name: &str,
        nodes: usize,
        control_planes: usize,
        node_cidr: &str,
    ) -> anyhow::Result<Topology> {
        anyhow::ensure!(nodes >= 1, "a cluster needs at least one node");
        anyhow::ensure!(
            (1..=nodes).contains(&control_planes),
            "--control-planes must be between 1 and --nodes"
        );
        anyhow::ensure!(nodes <= 200, "at most 200 nodes");
        anyhow::ensure!(
            !name.is_empty()
                && name.len() <= 20
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "--name must be 1-20 lowercase letters, digits or '-' (it names network namespaces)"
        );
        let (network, prefix_len) = parse_cidr(node_cidr)?;
        anyhow::ensure!(prefix_len <= 24, "--node-cidr must be a /24 or larger");
        let base = u32::from(network);
        let address = |offset: u32| Ipv4Addr::from(base + offset);
        let workers = nodes - control_planes;
        let mut specs = Vec::new();
        // The first control plane, then the workers, then the other control planes.
        let mut order: Vec<(String, bool)> = vec![(format!("{name}-control-plane"), true)];
        for w in 0..workers {
            let suffix = if w == 0 {
                String::new()
            } else {
                (w + 1).to_string()
            };
            order.push((format!("{name}-worker{suffix}"), false));
        }
        for c in 1..control_planes {
            order.push((format!("{name}-control-plane{}", c + 1), true));
        }
        for (i, (node, control_plane)) in order.into_iter().enumerate() {
            specs.push(NodeSpec {
                name: node,
                ip: address(10 + i as u32),
                control_plane,
            });
        }
        Ok(Topology {
            name: name.to_string(),
            host_netns: format!("{name}-host"),
            host_ip: address(1),
            prefix_len,
            nodes: specs,
        })
    }

    /// `/var/lib/skiff/<name>`: the cluster's state (kubeconfig, logs, nodes' dirs).
    pub fn state_dir(&self) -> PathBuf {
        PathBuf::from("/var/lib/skiff").join(&self.name)
    }

    pub fn node_dir(&self, node: &NodeSpec) -> PathBuf {
        self.state_dir().join(&node.name)
    }

    /// The cgroup every node's pods live under: `/skiff/<name>/<node>`.
    pub fn cgroup_root(&self) -> String {
        format!("/skiff/{}", self.name)
    }

    pub fn control_plane(&self) -> &NodeSpec {
        &self.nodes[0]
    }

    /// LoadBalancer IPs: `.220`–`.254` of the node network's first /24, past the last possible
    /// node (`.209` with 200 nodes), announced by the nodes on the node network.
    pub fn load_balancer_range(&self) -> String {
        let base = u32::from(self.host_ip) - 1;
        format!(
            "{}-{}",
            Ipv4Addr::from(base + 220),
            Ipv4Addr::from(base + 254)
        )
    }
}

pub fn parse_cidr(cidr: &str) -> anyhow::Result<(Ipv4Addr, u8)> {
    let (ip, len) = cidr
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("{cidr:?} is not a CIDR like 192.168.56.0/24"))?;
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| anyhow::anyhow!("{cidr:?}: bad address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| anyhow::anyhow!("{cidr:?}: bad prefix length"))?;
    anyhow::ensure!(len <= 32, "{cidr:?}: bad prefix length");
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok((Ipv4Addr::from(u32::from(ip) & mask), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_like_names_and_vagrant_addresses() {
        let t = Topology::new("skiff", 3, 1, "192.168.56.0/24").unwrap();
        let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            ["skiff-control-plane", "skiff-worker", "skiff-worker2"]
        );
        let ips: Vec<String> = t.nodes.iter().map(|n| n.ip.to_string()).collect();
        assert_eq!(ips, ["192.168.56.10", "192.168.56.11", "192.168.56.12"]);
        assert_eq!(t.host_ip.to_string(), "192.168.56.1");
        assert_eq!(t.load_balancer_range(), "192.168.56.220-192.168.56.254");
        assert_eq!(t.host_netns, "skiff-host");
        let ha = Topology::new("ha", 4, 2, "10.77.0.0/24").unwrap();
        let names: Vec<&str> = ha.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ha-control-plane",
                "ha-worker",
                "ha-worker2",
                "ha-control-plane2"
            ]
        );
        assert_eq!(ha.nodes[3].ip.to_string(), "10.77.0.13");
        assert!(ha.nodes[3].control_plane);
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(Topology::new("skiff", 0, 1, "192.168.56.0/24").is_err());
        assert!(Topology::new("skiff", 2, 3, "192.168.56.0/24").is_err());
        assert!(Topology::new("Bad_Name", 2, 1, "192.168.56.0/24").is_err());
        assert!(Topology::new("skiff", 2, 1, "192.168.56.0").is_err());
        assert!(Topology::new("skiff", 2, 1, "192.168.56.0/28").is_err());
    }
}
