//! The VXLAN overlay between nodes, as flannel's vxlan backend programs it: one device per
//! node (`skiff.1`: VNI 1, UDP 8472, learning off, MTU = underlay − 50, the node's pod-range
//! network address as a /32), and for every other node three entries, so no packet ever
//! needs a miss or a multicast flood:
//!
//! 1. ARP: `<peer range network address> → <peer VTEP MAC>` (permanent),
//! 2. FDB: `<peer VTEP MAC> → <peer underlay IP>` (the kernel's VXLAN destination),
//! 3. route: `<peer range> via <peer range network address> dev skiff.1 onlink` — last, so
//!    the kernel never ARPs for a gateway it does not know yet.
//!
//! State grows linearly with nodes, not pods. [`reconcile`] makes the entries exactly the
//! wanted set: it replaces (never deletes and re-adds) what is wanted, so a restart of the
//! agent leaves established pod traffic untouched, and removes what belongs to nodes that left.
//! The agent's routes carry their own protocol number ([`ROUTE_PROTOCOL`]), so it finds its
//! stale routes without touching anyone else's.
//!
//! **Direct routing** (flannel's `DirectRouting`, off by default): a peer whose underlay address
//! is on the node's own subnet gets a plain route `<range> via <peer IP>` instead — no
//! encapsulation, no 50-byte overhead. `skiff netd bench` measures both (docs/benchmarks.md).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use anyhow::Context;
use futures::TryStreamExt;
use ipnetwork::Ipv4Network;
use rtnetlink::packet_route::link::{InfoData, InfoVxlan, LinkAttribute, LinkInfo};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteProtocol, RouteType,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{Handle, LinkUnspec, LinkVxlan, RouteMessageBuilder};

use crate::netlink as nl;

pub const VNI: u32 = 1;
/// Linux's VXLAN port (flannel passes 0 and gets it); IANA's is 4789.
pub const PORT: u16 = 8472;
/// Outer Ethernet 14 + IP 20 + UDP 8 + VXLAN 8.
pub const OVERHEAD: u32 = 50;
/// The `proto` of every route the agent installs (`ip route show proto 180`).
pub const ROUTE_PROTOCOL: u8 = 180;

pub fn device_name() -> String {
    format!("skiff.{VNI}")
}

/// This node's end of the overlay.
#[derive(Debug, Clone)]
pub struct Vtep {
    pub index: u32,
    pub mac: [u8; 6],
    pub mtu: u32,
}

/// Another node as the overlay needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub node: String,
    pub subnet: Ipv4Network,
    pub public_ip: Ipv4Addr,
    pub vtep_mac: [u8; 6],
    /// Route straight to `public_ip` through `via_link` (direct routing), not through VXLAN.
    pub direct: Option<u32>,
}

fn vxlan_local(link: &rtnetlink::packet_route::link::LinkMessage) -> Option<Ipv4Addr> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Data(InfoData::Vxlan(vx)) => vx.iter().find_map(|v| match v {
                InfoVxlan::Local(ip) => Some(*ip),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    })
}

/// Creates (or keeps) the node's VXLAN device on `underlay` with `local_ip`, reusing `mac`
/// (the one published on the Node, so peers' entries stay right across restarts), and gives
/// it the pod range's network address.
pub async fn ensure_vtep(
    h: &Handle,
    underlay: &str,
    local_ip: Ipv4Addr,
    mac: Option<[u8; 6]>,
    pod_cidr: Ipv4Network,
) -> anyhow::Result<Vtep> {
    let name = device_name();
    let under = nl::link(h, underlay)
        .await?
        .with_context(|| format!("underlay interface {underlay} not found"))?;
    let mtu = nl::mtu_of(&under).unwrap_or(1500) - OVERHEAD;
    let mut existing = nl::link(h, &name).await?;
    if let Some(link) = &existing {
        let same_mac = mac.is_none() || nl::mac_of(link) == mac;
        if vxlan_local(link) != Some(local_ip) || !same_mac {
            tracing::info!(device = %name, "the VXLAN device has another address or MAC; recreating it");
            h.link().del(link.header.index).execute().await?;
            existing = None;
        }
    }
    if existing.is_none() {
        let mac = mac.unwrap_or_else(random_mac);
        let message = LinkVxlan::new(&name, VNI)
            .dev(under.header.index)
            .local(local_ip)
            .port(PORT)
            .learning(false)
            .mtu(mtu)
            .address(mac.to_vec())
            .build();
        h.link()
            .add(message)
            .execute()
            .await
            .with_context(|| format!("creating VXLAN device {name}"))?;
    }
    let link = nl::link(h, &name)
        .await?
        .with_context(|| format!("{name} vanished"))?;
    let index = link.header.index;
    match h
        .address()
        .add(index, IpAddr::V4(pod_cidr.network()), 32)
        .execute()
        .await
    {
        Ok(()) => {}
        Err(e) if nl::is_exists(&e) => {}
        Err(e) => return Err(e).context("adding the VTEP address"),
    }
    h.link()
        .set(LinkUnspec::new_with_index(index).mtu(mtu).up().build())
        .execute()
        .await?;
    Ok(Vtep {
        index,
        mac: nl::mac_of(&link).context("the VXLAN device has no MAC")?,
        mtu,
    })
}

/// A locally administered unicast MAC.
fn random_mac() -> [u8; 6] {
    let mut mac: [u8; 6] = rand::random();
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

async fn program(h: &Handle, vtep: &Vtep, peer: &Peer) -> anyhow::Result<()> {
    if let Some(underlay) = peer.direct {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(peer.subnet.network(), peer.subnet.prefix())
            .gateway(peer.public_ip)
            .output_interface(underlay)
            .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
            .build();
        h.route()
            .add(route)
            .replace()
            .execute()
            .await
            .with_context(|| format!("direct route to {} ({})", peer.subnet, peer.node))?;
        return Ok(());
    }
    let gateway = peer.subnet.network();
    h.neighbours()
        .add(vtep.index, IpAddr::V4(gateway))
        .link_layer_address(&peer.vtep_mac)
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await
        .with_context(|| format!("ARP entry for {}", peer.node))?;
    h.neighbours()
        .add_bridge(vtep.index, &peer.vtep_mac)
        .destination(IpAddr::V4(peer.public_ip))
        .flags(NeighbourFlags::Own)
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await
        .with_context(|| format!("FDB entry for {}", peer.node))?;
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(peer.subnet.network(), peer.subnet.prefix())
        .gateway(gateway)
        .output_interface(vtep.index)
        .onlink()
        .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
        .build();
    h.route()
        .add(route)
        .replace()
        .execute()
        .await
        .with_context(|| format!("route to {} ({})", peer.subnet, peer.node))?;
    Ok(())
}

/// Makes the device's routes, ARP and FDB entries exactly those of `peers`.
pub async fn reconcile(h: &Handle, vtep: &Vtep, peers: &[Peer]) -> anyhow::Result<()> {
    for peer in peers {
        program(h, vtep, peer).await?;
    }
    let subnets: HashSet<(Ipv4Addr, u8)> = peers
        .iter()
        .map(|p| (p.subnet.network(), p.subnet.prefix()))
        .collect();
    let tunnelled = || peers.iter().filter(|p| p.direct.is_none());
    let gateways: HashSet<Ipv4Addr> = tunnelled().map(|p| p.subnet.network()).collect();
    let fdb: HashSet<([u8; 6], Ipv4Addr)> =
        tunnelled().map(|p| (p.vtep_mac, p.public_ip)).collect();

    // The agent's routes (by protocol) to ranges no peer has any more, and routes through the
    // device it did not make. Only the main table's unicast routes: a dump lists every table,
    // and the local table holds the kernel's `local <VTEP address>` route, without which
    // replies to the node are forwarded away.
    let mut routes = h
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    let mut stale_routes = Vec::new();
    while let Some(route) = routes.try_next().await? {
        let oif = route.attributes.iter().find_map(|a| match a {
            RouteAttribute::Oif(i) => Some(*i),
            _ => None,
        });
        let table = route
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(route.header.table));
        let ours = route.header.protocol == RouteProtocol::Other(ROUTE_PROTOCOL);
        if !(ours || oif == Some(vtep.index))
            || table != u32::from(RouteHeader::RT_TABLE_MAIN)
            || route.header.kind != RouteType::Unicast
        {
            continue;
        }
        let dst = route.attributes.iter().find_map(|a| match a {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(*ip),
            _ => None,
        });
        let key = (
            dst.unwrap_or(Ipv4Addr::UNSPECIFIED),
            route.header.destination_prefix_length,
        );
        if !subnets.contains(&key) {
            stale_routes.push(route);
        }
    }
    for route in stale_routes {
        tracing::info!(?route.attributes, "removing a route of a node that left");
        if let Err(e) = h.route().del(route).execute().await {
            if !nl::is_not_found(&e) {
                return Err(e.into());
            }
        }
    }

    let mut neighbours = h.neighbours().get().execute();
    let mut stale = Vec::new();
    while let Some(n) = neighbours.try_next().await? {
        if n.header.ifindex != vtep.index {
            continue;
        }
        let keep = match n.header.family {
            AddressFamily::Inet => n.attributes.iter().any(|a| {
                matches!(a, NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) if gateways.contains(ip))
            }),
            _ => true,
        };
        if !keep {
            stale.push(n);
        }
    }
    let mut bridge_entries = h
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge)
        .execute();
    while let Some(n) = bridge_entries.try_next().await? {
        if n.header.ifindex != vtep.index {
            continue;
        }
        let mac: Option<[u8; 6]> = n.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::LinkLayerAddress(l) => l.as_slice().try_into().ok(),
            _ => None,
        });
        // AF_BRIDGE entries carry the IPv4 remote as raw bytes.
        let dst = n.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => Some(*ip),
            NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                <[u8; 4]>::try_from(b.as_slice()).ok().map(Ipv4Addr::from)
            }
            _ => None,
        });
        // Entries without a remote (the device's own MAC) are the kernel's.
        if let (Some(mac), Some(dst)) = (mac, dst) {
            if !fdb.contains(&(mac, dst)) {
                // A bare request (the dump's cache info and flags are not accepted back).
                let mut entry = NeighbourMessage::default();
                entry.header.family = AddressFamily::Bridge;
                entry.header.ifindex = vtep.index;
                entry.header.flags = NeighbourFlags::Own;
                entry.header.state = NeighbourState::Permanent;
                entry.attributes = vec![
                    NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)),
                ];
                stale.push(entry);
            }
        }
    }
    for n in stale {
        if let Err(e) = h.neighbours().del(n).execute().await {
            if !nl::is_not_found(&e) {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// Removes the node's overlay device (its routes and entries go with it).
pub async fn remove(h: &Handle) -> anyhow::Result<()> {
    if let Some(link) = nl::link(h, &device_name()).await? {
        h.link().del(link.header.index).execute().await?;
    }
    Ok(())
}
