//! Egress: pods reach addresses outside the cluster network with their node's address (source
//! NAT), as flannel's `ip-masq` rules do — but pod-to-pod traffic keeps its addresses, since
//! the overlay needs no NAT.
//!
//! One nftables table per node, `ip skiff-netd`, replaced as a whole in one `nft -f`
//! transaction (never half-written). nftables rather than an eBPF program: masquerade needs
//! conntrack's port allocation and reverse translation, which nftables has and a tc program
//! would have to rebuild. Programmed through `nft`, the tool the nftables project ships as its
//! API (the `nftables` crates drive the same binary).

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::Context;
use ipnetwork::Ipv4Network;

pub const TABLE: &str = "skiff-netd";

/// The table's rules for `cluster_cidr` (all pods of the cluster).
pub fn ruleset(cluster_cidr: Ipv4Network) -> String {
    format!(
        "add table ip {TABLE}\n\
         delete table ip {TABLE}\n\
         table ip {TABLE} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {cluster_cidr} ip daddr {cluster_cidr} return\n\
         \t\tip saddr {cluster_cidr} ip daddr 224.0.0.0/4 return\n\
         \t\tip saddr {cluster_cidr} masquerade fully-random\n\
         \t}}\n\
         }}\n"
    )
}

fn nft(script: &str) -> anyhow::Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (package nftables)")?;
    child
        .stdin
        .take()
        .context("nft's stdin")?
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Installs (or replaces) the node's masquerade rules.
pub fn apply(cluster_cidr: Ipv4Network) -> anyhow::Result<()> {
    nft(&ruleset(cluster_cidr))
}

/// Removes the node's table, if it is there.
pub fn remove() -> anyhow::Result<()> {
    nft(&format!("add table ip {TABLE}\ndelete table ip {TABLE}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_to_pod_is_left_alone_and_the_rest_masqueraded() {
        let rules = ruleset("10.244.0.0/16".parse().unwrap());
        let ret = rules.find("ip daddr 10.244.0.0/16 return").unwrap();
        let masq = rules.find("masquerade").unwrap();
        assert!(ret < masq, "{rules}");
        assert!(rules.starts_with("add table ip skiff-netd\ndelete table ip skiff-netd\n"));
    }
}
