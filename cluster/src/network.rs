//! The node network of the local cluster, made with iproute2 inside namespaces the cluster
//! owns: `<name>-host` with bridge `br0` at the network's first address, one veth per node
//! (`eth0` in the node, `v<i>` on the bridge) and each node's default route via the host.
//! Pods are networked by `skiff netd` on every node (skiff-cni and the VXLAN overlay between
//! nodes); the host reaches the pod network through the first control plane, as a router of
//! the node network would. The machine's own namespace is never touched.

use std::process::Command;

use anyhow::Context;

use crate::topology::Topology;

/// The cluster's pod network (the controllers' --cluster-cidr default).
pub const POD_NETWORK: &str = "10.244.0.0/16";

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    anyhow::ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

fn sysctl_in(netns: &str, setting: &str) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "sysctl", "-qw", setting])
        .output()
        .context("running sysctl")?;
    anyhow::ensure!(
        out.status.success(),
        "sysctl {setting} in {netns}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Creates the namespaces and links; `created` gets each namespace as soon as it exists (so
/// a failure half-way is cleaned up too).
pub fn create(t: &Topology, created: &mut Vec<String>) -> anyhow::Result<()> {
    for existing in list()? {
        if existing == t.host_netns || t.nodes.iter().any(|n| n.name == existing) {
            anyhow::bail!("network namespace {existing} already exists: is cluster {:?} up? (skiff down --name {})", t.name, t.name);
        }
    }
    let host = &t.host_netns;
    ip(&["netns", "add", host])?;
    created.push(host.clone());
    ip(&["-n", host, "link", "set", "lo", "up"])?;
    ip(&["-n", host, "link", "add", "br0", "type", "bridge"])?;
    ip(&[
        "-n",
        host,
        "addr",
        "add",
        &format!("{}/{}", t.host_ip, t.prefix_len),
        "dev",
        "br0",
    ])?;
    ip(&["-n", host, "link", "set", "br0", "up"])?;
    sysctl_in(host, "net.ipv4.ip_forward=1")?;
    for (i, node) in t.nodes.iter().enumerate() {
        ip(&["netns", "add", &node.name])?;
        created.push(node.name.clone());
        let peer = format!("v{i}");
        ip(&[
            "-n", host, "link", "add", &peer, "type", "veth", "peer", "name", "eth0", "netns",
            &node.name,
        ])?;
        ip(&["-n", host, "link", "set", &peer, "master", "br0", "up"])?;
        ip(&["-n", &node.name, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &node.name,
            "addr",
            "add",
            &format!("{}/{}", node.ip, t.prefix_len),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &node.name, "link", "set", "eth0", "up"])?;
        ip(&[
            "-n",
            &node.name,
            "route",
            "add",
            "default",
            "via",
            &t.host_ip.to_string(),
        ])?;
        sysctl_in(&node.name, "net.ipv4.ip_forward=1")?;
    }
    ip(&[
        "-n",
        host,
        "route",
        "add",
        POD_NETWORK,
        "via",
        &t.control_plane().ip.to_string(),
    ])?;
    Ok(())
}

/// Named network namespaces (`ip netns list`).
pub fn list() -> anyhow::Result<Vec<String>> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .context("running ip netns list")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

pub fn delete(netns: &str) {
    let _ = Command::new("ip").args(["netns", "del", netns]).output();
}
