//! ADD: the pod's veth on the node's bridge, an address, routes, the result.
//!
//! Bridge (not point-to-point /32 routes per pod, as Calico or kindnet do): a pod's reply to
//! its own Service comes back through its own bridge port with hairpin mode, neighbours on one
//! node talk without routing, and the node needs one route per *node* in the overlay rather than
//! one per pod. The bridge holds the pod range's gateway address, so the node reaches its pods
//! directly and the overlay's per-node route covers everything else.
//!
//! Everything ADD creates is undone if a later step fails: the spec asks a failed ADD to leave
//! nothing behind.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::RouteMessageBuilder;
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth};
use serde_json::{json, Value};

use super::config::{Env, NetConf};
use super::error::{netlink, CniError, Code};
use super::ipam::Store;
use crate::netlink::{self as nl, format_mac};

/// The host end's name: stable for an attachment, so DEL finds it without state.
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    // FNV-1a over "id/ifname": short, stable, spread enough for one node's pods.
    let mut hash: u32 = 0x811c_9dc5;
    for b in container_id.bytes().chain(*b"/").chain(ifname.bytes()) {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("veth{hash:08x}")
}

pub async fn add(env: &Env, conf: &NetConf) -> Result<Value, CniError> {
    let netns_path = env.netns.as_deref().expect("checked by Env");
    let netns = std::fs::File::open(netns_path).map_err(|e| {
        CniError::new(
            Code::Io,
            format!("failed to open netns {:?}", netns_path.display()),
        )
        .with_details(e)
    })?;
    let store = Store::open(&conf.data_dir, &conf.name)?;
    let ip = store.allocate(conf.subnet, conf.gateway, &env.container_id, &env.ifname)?;
    let handle = nl::connect().map_err(|e| netlink("opening a netlink socket", e))?;
    let host_name = host_veth_name(&env.container_id, &env.ifname);
    match plumb(&handle, env, conf, &netns, netns_path, &host_name, ip).await {
        Ok(result) => Ok(result),
        Err(e) => {
            // Leave nothing behind: the veth (its peer goes with it) and the address.
            if let Ok(Some(link)) = nl::link(&handle, &host_name).await {
                let _ = handle.link().del(link.header.index).execute().await;
            }
            let _ = store.release(&env.container_id, &env.ifname);
            Err(e)
        }
    }
}

async fn plumb(
    handle: &Handle,
    env: &Env,
    conf: &NetConf,
    netns: &std::fs::File,
    netns_path: &Path,
    host_name: &str,
    ip: Ipv4Addr,
) -> Result<Value, CniError> {
    let bridge = ensure_bridge(handle, conf).await?;
    // A leftover from an ADD that was never deleted (the runtime crashed in between).
    if let Some(stale) = nl::link(handle, host_name)
        .await
        .map_err(|e| netlink("looking up links", e))?
    {
        handle
            .link()
            .del(stale.header.index)
            .execute()
            .await
            .map_err(|e| netlink("deleting a stale veth", e))?;
    }
    // The peer is created directly inside the pod's namespace (no name clash with the node's
    // own interfaces, nothing to move afterwards).
    let peer = LinkUnspec::new_with_name(&env.ifname)
        .mtu(conf.mtu)
        .setns_by_fd(netns.as_raw_fd())
        .build();
    let veth = LinkVeth::new(host_name, &env.ifname)
        .mtu(conf.mtu)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    handle.link().add(veth).execute().await.map_err(|e| {
        if nl::is_exists(&e) {
            CniError::new(
                Code::Netlink,
                format!("container veth name {:?} already exists", env.ifname),
            )
        } else {
            netlink("creating the veth pair", e)
        }
    })?;
    let host = nl::link(handle, host_name)
        .await
        .map_err(|e| netlink("looking up the veth", e))?
        .ok_or_else(|| CniError::new(Code::Netlink, format!("veth {host_name} vanished")))?;
    let host_index = host.header.index;
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(host_index)
                .controller(bridge.index)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(|e| netlink("attaching the veth to the bridge", e))?;
    if conf.hairpin {
        handle
            .link()
            .set_port(LinkBridgePort::new(host_index).hairpin(true).build())
            .execute()
            .await
            .map_err(|e| netlink("setting hairpin mode", e))?;
    }

    let prefix = conf.subnet.prefix();
    let gateway = conf.gateway;
    let routes: Vec<(ipnetwork::Ipv4Network, Ipv4Addr)> = conf
        .routes
        .iter()
        .map(|r| (r.dst, r.gw.unwrap_or(gateway)))
        .collect();
    let ifname = env.ifname.clone();
    let pod_mac = nl::in_netns(netns_path, move |h| async move {
        configure_pod_side(&h, &ifname, ip, prefix, &routes).await
    })
    .map_err(|e| {
        CniError::new(Code::Netlink, "configuring the pod's interface")
            .with_details(format!("{e:#}"))
    })?;

    let version = conf.cni_version.as_str();
    let mut ip_entry = json!({
        "address": format!("{ip}/{prefix}"),
        "gateway": gateway.to_string(),
        "interface": 2,
    });
    if version == "0.4.0" {
        ip_entry["version"] = json!("4");
    }
    Ok(json!({
        "cniVersion": version,
        "interfaces": [
            {"name": conf.bridge, "mac": format_mac(&bridge.mac)},
            {"name": host_name, "mac": nl::mac_of(&host).map(|m| format_mac(&m)).unwrap_or_default()},
            {"name": env.ifname, "mac": format_mac(&pod_mac), "sandbox": netns_path.display().to_string()},
        ],
        "ips": [ip_entry],
        "routes": conf.routes.iter().map(|r| {
            let mut route = json!({"dst": r.dst.to_string()});
            if let Some(gw) = r.gw { route["gw"] = json!(gw.to_string()); }
            route
        }).collect::<Vec<_>>(),
        "dns": {},
    }))
}

async fn configure_pod_side(
    h: &Handle,
    ifname: &str,
    ip: Ipv4Addr,
    prefix: u8,
    routes: &[(ipnetwork::Ipv4Network, Ipv4Addr)],
) -> anyhow::Result<[u8; 6]> {
    if let Some(lo) = nl::link(h, "lo").await? {
        h.link()
            .set(LinkUnspec::new_with_index(lo.header.index).up().build())
            .execute()
            .await?;
    }
    let link = nl::link(h, ifname)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{ifname} is not in the pod's namespace"))?;
    let index = link.header.index;
    h.address()
        .add(index, IpAddr::V4(ip), prefix)
        .execute()
        .await?;
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await?;
    for (dst, gw) in routes {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dst.network(), dst.prefix())
            .gateway(*gw)
            .output_interface(index)
            .build();
        h.route().add(route).replace().execute().await?;
    }
    nl::mac_of(&link).ok_or_else(|| anyhow::anyhow!("{ifname} has no hardware address"))
}

pub struct Bridge {
    pub index: u32,
    pub mac: [u8; 6],
}

/// The node's bridge with the gateway address, created on the first ADD.
pub async fn ensure_bridge(handle: &Handle, conf: &NetConf) -> Result<Bridge, CniError> {
    let existing = nl::link(handle, &conf.bridge)
        .await
        .map_err(|e| netlink("looking up the bridge", e))?;
    let link = match existing {
        Some(link) => link,
        None => {
            match handle
                .link()
                .add(LinkBridge::new(&conf.bridge).mtu(conf.mtu).build())
                .execute()
                .await
            {
                Ok(()) => {}
                Err(e) if nl::is_exists(&e) => {}
                Err(e) => return Err(netlink("creating the bridge", e)),
            }
            nl::link(handle, &conf.bridge)
                .await
                .map_err(|e| netlink("looking up the bridge", e))?
                .ok_or_else(|| CniError::new(Code::Netlink, "the bridge vanished"))?
        }
    };
    let index = link.header.index;
    match handle
        .address()
        .add(index, IpAddr::V4(conf.gateway), conf.subnet.prefix())
        .execute()
        .await
    {
        Ok(()) => {}
        Err(e) if nl::is_exists(&e) => {}
        Err(e) => return Err(netlink("adding the gateway address to the bridge", e)),
    }
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| netlink("setting the bridge up", e))?;
    Ok(Bridge {
        index,
        mac: nl::mac_of(&link).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_stable_and_fit_the_kernel_limit() {
        let a = host_veth_name("0123456789abcdef", "eth0");
        assert_eq!(a, host_veth_name("0123456789abcdef", "eth0"));
        assert_ne!(a, host_veth_name("0123456789abcdef", "eth1"));
        assert_eq!(a.len(), 12);
        assert!(a.starts_with("veth"));
    }
}
