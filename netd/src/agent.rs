//! `skiff netd`: the node's network agent (flannel's daemon). In order:
//!
//! 1. waits for the Node's `spec.podCIDR` (the controllers' node IPAM hands it out),
//! 2. creates the VXLAN device, reusing the VTEP MAC published on the Node so the other
//!    nodes' entries stay valid across restarts, and publishes MAC and underlay IP as
//!    annotations ([`BACKEND_DATA`], [`PUBLIC_IP`]),
//! 3. installs the egress masquerade rules,
//! 4. links `skiff-cni` into the CNI bin dir and writes the conflist — the moment the kubelet
//!    reports the node Ready — and sets the Node's `NetworkUnavailable` condition to False,
//! 5. then follows every Node through a watch: a node that joins, leaves or changes address is
//!    in the overlay's routes at the next event; a periodic pass repairs anything removed
//!    behind its back.
//!
//! Stopping the agent leaves the datapath as it is (pods keep talking); `--cleanup` removes
//! everything it made, by name.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use ipnetwork::Ipv4Network;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use kube::ResourceExt;
use rtnetlink::packet_route::address::AddressAttribute;
use serde_json::json;

use crate::netlink::{self as nl, format_mac, parse_mac};
use crate::overlay::{self, Peer};
use crate::{cni, egress};

pub const BACKEND_TYPE: &str = "netd.skiff.dev/backend-type";
pub const BACKEND_DATA: &str = "netd.skiff.dev/backend-data";
pub const PUBLIC_IP: &str = "netd.skiff.dev/public-ip";
/// The conflist `skiff netd` writes; first in name order, so the kubelet picks it.
pub const CONFLIST: &str = "10-skiff.conflist";

#[derive(Debug, Clone, clap::Args)]
pub struct NetdArgs {
    /// Credentials of this node (user `system:node:<name>`).
    #[arg(long, required_unless_present = "cleanup")]
    pub kubeconfig: Option<PathBuf>,
    /// The Node this agent programs the network of.
    #[arg(long = "node-name", required_unless_present = "cleanup")]
    pub node_name: Option<String>,
    /// The underlay interface: VXLAN packets leave through it.
    #[arg(long, default_value = "eth0")]
    pub iface: String,
    /// The node's underlay address (default: the first IPv4 address of --iface).
    #[arg(long)]
    pub public_ip: Option<Ipv4Addr>,
    /// The cluster's pod network: traffic inside it is never NATed.
    #[arg(long, default_value = "10.244.0.0/16")]
    pub cluster_cidr: Ipv4Network,
    /// Where the CNI configuration goes (the kubelet's --cni-conf-dir).
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    /// Where the `skiff-cni` plugin is linked (one of the kubelet's --cni-bin-dir).
    #[arg(long, default_value = "/opt/cni/bin")]
    pub cni_bin_dir: PathBuf,
    /// The plugin's address store.
    #[arg(long, default_value = "/var/lib/cni/networks")]
    pub cni_data_dir: PathBuf,
    /// Route straight to peers on the node's own underlay subnet instead of through VXLAN
    /// (flannel's DirectRouting); others still go through the overlay.
    #[arg(long)]
    pub direct_routing: bool,
    /// Seconds between full passes that repair the device and its entries.
    #[arg(long, default_value_t = 30)]
    pub resync_period: u64,
    /// The cgroup the node's pods run under (the kubelet's --cgroup-root): the service proxy's
    /// socket programs attach to its cgroup2 directory, so they cover this node's pods only.
    #[arg(long, default_value = "/")]
    pub cgroup_root: String,
    /// A directory on a bpffs for the proxy's pinned maps and links (a bpffs is mounted there
    /// when it is on another filesystem).
    #[arg(long, default_value = "/sys/fs/bpf/skiff")]
    pub bpf_root: PathBuf,
    /// Run no service proxy (another one, e.g. kube-proxy, serves Services).
    #[arg(long)]
    pub disable_proxy: bool,
    /// Serve no traffic from outside the node (NodePort on the node's address, LoadBalancer
    /// IPs, externalIPs): only the socket programs are attached.
    #[arg(long)]
    pub disable_external_lb: bool,
    /// Source ports for NodePort/LoadBalancer traffic forwarded to another node's backend
    /// (`MIN-MAX`).
    #[arg(long, default_value = "61000-65000", value_parser = parse_port_range)]
    pub nat_port_range: (u16, u16),
    /// Where the service proxy serves /metrics, /services and /healthz (kube-proxy's port);
    /// empty: nowhere.
    #[arg(long, default_value = "127.0.0.1:10249")]
    pub proxy_metrics_address: String,
    /// Remove everything the agent and the plugin made on this node, then exit.
    #[arg(long)]
    pub cleanup: bool,
}

fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let (min, max) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not a range like 61000-65000"))?;
    let min: u16 = min.parse().map_err(|e| format!("{min:?}: {e}"))?;
    let max: u16 = max.parse().map_err(|e| format!("{max:?}: {e}"))?;
    if min == 0 || min > max {
        return Err(format!("{s:?}: the first port must be 1..=the last"));
    }
    Ok((min, max))
}

/// The overlay's view of another node, or why it is skipped.
pub fn peer_of(node: &Node) -> Result<Peer, String> {
    let name = node.name_any();
    let annotations = node.annotations();
    let subnet: Ipv4Network = node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .ok_or("no spec.podCIDR yet")?
        .parse()
        .map_err(|e| format!("bad spec.podCIDR: {e}"))?;
    let public_ip: Ipv4Addr = annotations
        .get(PUBLIC_IP)
        .ok_or("no public-ip annotation yet")?
        .parse()
        .map_err(|e| format!("bad {PUBLIC_IP} annotation: {e}"))?;
    let data: serde_json::Value = serde_json::from_str(
        annotations
            .get(BACKEND_DATA)
            .ok_or("no backend-data annotation yet")?,
    )
    .map_err(|e| format!("bad {BACKEND_DATA} annotation: {e}"))?;
    let vtep_mac = data
        .get("VtepMAC")
        .and_then(|m| m.as_str())
        .and_then(parse_mac)
        .ok_or_else(|| format!("bad {BACKEND_DATA} annotation: no valid VtepMAC"))?;
    Ok(Peer {
        node: name,
        subnet,
        public_ip,
        vtep_mac,
        direct: None,
    })
}

fn conflist(args: &NetdArgs, pod_cidr: Ipv4Network, mtu: u32) -> serde_json::Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "skiff",
        "plugins": [
            {
                "type": cni::PLUGIN_TYPE,
                "bridge": "cni0",
                "mtu": mtu,
                "subnet": pod_cidr.to_string(),
                "dataDir": args.cni_data_dir,
            },
            {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true},
        ]
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// `<cni-bin-dir>/skiff-cni` → this binary (multi-call, as k3s links its CNI plugins).
fn install_plugin(bin_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(bin_dir)?;
    let exe = std::env::current_exe().context("finding the skiff binary")?;
    let link = bin_dir.join(cni::PLUGIN_TYPE);
    let tmp = bin_dir.join(format!(".{}.tmp", cni::PLUGIN_TYPE));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&exe, &tmp)?;
    std::fs::rename(&tmp, &link)?;
    Ok(())
}

/// The interface's index and first IPv4 address with its prefix.
async fn first_ipv4(h: &rtnetlink::Handle, iface: &str) -> anyhow::Result<(u32, Ipv4Network)> {
    let link = nl::link(h, iface)
        .await?
        .with_context(|| format!("interface {iface} not found"))?;
    let mut addresses = h
        .address()
        .get()
        .set_link_index_filter(link.header.index)
        .execute();
    while let Some(a) = addresses.try_next().await? {
        for attr in &a.attributes {
            if let AddressAttribute::Address(IpAddr::V4(ip)) = attr {
                return Ok((
                    link.header.index,
                    Ipv4Network::new(*ip, a.header.prefix_len)?,
                ));
            }
        }
    }
    anyhow::bail!("{iface} has no IPv4 address (pass --public-ip)")
}

pub async fn run(args: NetdArgs) -> anyhow::Result<()> {
    if args.cleanup {
        return cleanup(&args).await;
    }
    let kubeconfig = args.kubeconfig.clone().context("--kubeconfig")?;
    let node_name = args.node_name.clone().context("--node-name")?;
    let client = client_from_kubeconfig(&kubeconfig).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let handle = nl::connect()?;

    // 1. The node's range, from a watch of the Node (node IPAM sets it right after the
    // kubelet registers; a poll would add up to its period to every node's start).
    tracing::info!("waiting for node {node_name} to get spec.podCIDR");
    let has_range = |n: Option<&Node>| {
        n.and_then(|n| n.spec.as_ref())
            .and_then(|s| s.pod_cidr.as_ref())
            .is_some()
    };
    let own = loop {
        match kube::runtime::wait::await_condition(nodes.clone(), &node_name, has_range).await {
            Ok(Some(node)) => break node,
            Ok(None) => {}
            // E.g. a credential the API server has not loaded yet: retried.
            Err(e) => tracing::warn!("watching node {node_name}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let cidr = own
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.clone())
        .unwrap_or_default();
    let pod_cidr: Ipv4Network = cidr
        .parse()
        .with_context(|| format!("node {node_name}: spec.podCIDR {cidr:?}"))?;
    let (underlay_index, underlay) = first_ipv4(&handle, &args.iface).await?;
    let public_ip = args.public_ip.unwrap_or(underlay.ip());

    // 2. The device, its MAC kept from the Node's annotation.
    let published_mac = peer_of(&own).ok().map(|p| p.vtep_mac).or_else(|| {
        own.annotations()
            .get(BACKEND_DATA)
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
            .and_then(|d| {
                d.get("VtepMAC")
                    .and_then(|m| m.as_str())
                    .and_then(parse_mac)
            })
    });
    let vtep =
        overlay::ensure_vtep(&handle, &args.iface, public_ip, published_mac, pod_cidr).await?;
    let annotations = json!({"metadata": {"annotations": {
        BACKEND_TYPE: "vxlan",
        BACKEND_DATA: json!({"VNI": overlay::VNI, "VtepMAC": format_mac(&vtep.mac)}).to_string(),
        PUBLIC_IP: public_ip.to_string(),
    }}});
    nodes
        .patch(
            &node_name,
            &PatchParams::default(),
            &Patch::Merge(annotations),
        )
        .await
        .context("publishing the VTEP on the Node")?;

    // 3. Egress.
    egress::apply(args.cluster_cidr)?;

    // 4. CNI, then the condition.
    install_plugin(&args.cni_bin_dir)?;
    std::fs::create_dir_all(&args.cni_conf_dir)?;
    let conf = serde_json::to_vec_pretty(&conflist(&args, pod_cidr, vtep.mtu))?;
    write_atomically(&args.cni_conf_dir.join(CONFLIST), &conf)?;
    let now = jiff::Timestamp::now().to_string();
    let condition = json!({"status": {"conditions": [{
        "type": "NetworkUnavailable",
        "status": "False",
        "reason": "SkiffNetdIsUp",
        "message": "skiff netd is running on this node",
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
    }]}});
    if let Err(e) = nodes
        .patch_status(
            &node_name,
            &PatchParams::default(),
            &Patch::Strategic(condition),
        )
        .await
    {
        tracing::warn!("setting NetworkUnavailable=False on {node_name}: {e}");
    }
    println!(
        "skiff netd ready: node {node_name}, pods {pod_cidr}, VTEP {} on {} ({public_ip}), MTU {}",
        format_mac(&vtep.mac),
        overlay::device_name(),
        vtep.mtu
    );

    // 5. The service proxy beside the overlay.
    let proxy = async {
        if args.disable_proxy {
            return std::future::pending::<anyhow::Result<()>>().await;
        }
        ensure_bpffs(&args.bpf_root)?;
        let cgroup = crate::proxy::datapath::cgroup2_dir(&args.cgroup_root)?;
        let mac = nl::link(&handle, &args.iface)
            .await?
            .as_ref()
            .and_then(nl::mac_of)
            .with_context(|| format!("{} has no MAC address", args.iface))?;
        let tc = (!args.disable_external_lb).then(|| crate::proxy::datapath::TcSetup {
            iface: args.iface.clone(),
            overlay: Some(overlay::device_name()),
            config: crate::proxy::maps::Lb4Config {
                node_ip: crate::proxy::maps::addr(public_ip),
                // The VTEP's address: replies to it come back to this node through the overlay
                // (or the direct route) and pass reverse-path filtering on the backend's node.
                snat_ip: crate::proxy::maps::addr(pod_cidr.network()),
                pod_net: crate::proxy::maps::addr(pod_cidr.network()),
                pod_mask: crate::proxy::maps::addr(pod_cidr.mask()),
                nat_port_min: args.nat_port_range.0,
                nat_port_max: args.nat_port_range.1,
                mac,
                ..Default::default()
            },
        });
        let datapath =
            crate::proxy::datapath::Datapath::load(&args.bpf_root, &cgroup, tc.as_ref())?;
        println!(
            "skiff netd service proxy attached to {}{}",
            cgroup.display(),
            if tc.is_some() {
                format!(" and {} (NodePort, LoadBalancer)", args.iface)
            } else {
                String::new()
            }
        );
        let announcer = tc.map(|_| crate::proxy::sync::Announcer {
            iface: args.iface.clone(),
            mac,
        });
        let metrics = if args.proxy_metrics_address.is_empty() {
            None
        } else {
            Some(
                args.proxy_metrics_address
                    .parse()
                    .context("--proxy-metrics-address")?,
            )
        };
        crate::proxy::sync::run(
            client.clone(),
            node_name.clone(),
            datapath,
            metrics,
            announcer,
        )
        .await
    };
    let overlay = follow_nodes(
        &args,
        &nodes,
        &handle,
        &node_name,
        public_ip,
        underlay,
        underlay_index,
        pod_cidr,
        vtep,
    );
    tokio::select! {
        r = proxy => r.context("the service proxy"),
        r = overlay => r,
    }
}

/// Mounts a bpffs at `dir` unless it already is on one.
fn ensure_bpffs(dir: &Path) -> anyhow::Result<()> {
    const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
    std::fs::create_dir_all(dir)?;
    let fs = nix::sys::statfs::statfs(dir)?;
    if fs.filesystem_type().0 as i64 != BPF_FS_MAGIC {
        nix::mount::mount(
            Some("bpf"),
            dir,
            Some("bpf"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .with_context(|| format!("mounting a bpffs at {}", dir.display()))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn follow_nodes(
    args: &NetdArgs,
    nodes: &Api<Node>,
    handle: &rtnetlink::Handle,
    node_name: &str,
    public_ip: Ipv4Addr,
    underlay: Ipv4Network,
    underlay_index: u32,
    pod_cidr: Ipv4Network,
    vtep: overlay::Vtep,
) -> anyhow::Result<()> {
    let (reader, writer) = kube::runtime::reflector::store::<Node>();
    let mut events =
        kube::runtime::reflector(writer, watcher(nodes.clone(), watcher::Config::default()))
            .ready_chunks(512)
            .boxed();
    let mut resync = tokio::time::interval(Duration::from_secs(args.resync_period.max(1)));
    let mut synced = false;
    let mut vtep = vtep;
    let mut skipped: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let repair = tokio::select! {
            batch = events.next() => {
                let Some(batch) = batch else { anyhow::bail!("the node watch ended") };
                for event in batch {
                    match event {
                        Ok(watcher::Event::InitDone) => synced = true,
                        Ok(_) => {}
                        Err(e) => tracing::warn!("watching nodes: {e}"),
                    }
                }
                false
            }
            _ = resync.tick() => true,
        };
        if !synced {
            continue;
        }
        if repair {
            match overlay::ensure_vtep(handle, &args.iface, public_ip, Some(vtep.mac), pod_cidr)
                .await
            {
                Ok(v) => vtep = v,
                Err(e) => {
                    tracing::warn!("repairing the VXLAN device: {e:#}");
                    continue;
                }
            }
            if let Err(e) = egress::apply(args.cluster_cidr) {
                tracing::warn!("repairing the egress rules: {e:#}");
            }
        }
        let mut peers = Vec::new();
        for node in reader.state() {
            if node.name_any() == node_name {
                continue;
            }
            match peer_of(&node) {
                Ok(mut peer) => {
                    if args.direct_routing && underlay.contains(peer.public_ip) {
                        peer.direct = Some(underlay_index);
                    }
                    skipped.remove(&peer.node);
                    peers.push(peer);
                }
                Err(why) => {
                    // Logged once per reason, not on every event.
                    if skipped.get(&node.name_any()) != Some(&why) {
                        tracing::info!(node = %node.name_any(), "not in the overlay: {why}");
                        skipped.insert(node.name_any(), why);
                    }
                }
            }
        }
        peers.sort_by(|a, b| a.node.cmp(&b.node));
        // Netlink failures are retried on the next event or pass.
        if let Err(e) = overlay::reconcile(handle, &vtep, &peers).await {
            tracing::warn!("programming the overlay: {e:#}");
        }
    }
}

/// Removes the conflist, the plugin link, the egress table, the overlay device and the bridge.
pub async fn cleanup(args: &NetdArgs) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(args.cni_conf_dir.join(CONFLIST));
    let _ = std::fs::remove_file(args.cni_bin_dir.join(cni::PLUGIN_TYPE));
    egress::remove()?;
    crate::proxy::datapath::remove(&args.bpf_root)?;
    let handle = nl::connect()?;
    overlay::remove(&handle).await?;
    if let Some(bridge) = nl::link(&handle, "cni0").await? {
        handle.link().del(bridge.header.index).execute().await?;
    }
    Ok(())
}

async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(kube::Client::try_from(config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cidr: Option<&str>, annotations: &[(&str, &str)]) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": annotations.iter().cloned().collect::<BTreeMap<_, _>>()},
            "spec": {"podCIDR": cidr},
        }))
        .unwrap()
    }

    #[test]
    fn peers_come_from_annotations_and_bad_ones_are_skipped_with_a_reason() {
        let good = node(
            "w1",
            Some("10.244.2.0/24"),
            &[
                (PUBLIC_IP, "192.168.77.11"),
                (BACKEND_DATA, r#"{"VNI":1,"VtepMAC":"0a:58:0a:f4:02:00"}"#),
            ],
        );
        let peer = peer_of(&good).unwrap();
        assert_eq!(peer.subnet.to_string(), "10.244.2.0/24");
        assert_eq!(peer.public_ip, Ipv4Addr::new(192, 168, 77, 11));
        assert_eq!(peer.vtep_mac, [0x0a, 0x58, 0x0a, 0xf4, 0x02, 0x00]);
        assert!(peer_of(&node("w2", None, &[]))
            .unwrap_err()
            .contains("podCIDR"));
        let bad_mac = node(
            "w3",
            Some("10.244.3.0/24"),
            &[
                (PUBLIC_IP, "192.168.77.12"),
                (BACKEND_DATA, r#"{"VtepMAC":"nope"}"#),
            ],
        );
        assert!(peer_of(&bad_mac).unwrap_err().contains("VtepMAC"));
        let bad_ip = node(
            "w4",
            Some("10.244.4.0/24"),
            &[
                (PUBLIC_IP, "not-an-ip"),
                (BACKEND_DATA, r#"{"VtepMAC":"0a:58:0a:f4:02:00"}"#),
            ],
        );
        assert!(peer_of(&bad_ip).unwrap_err().contains(PUBLIC_IP));
    }
}
