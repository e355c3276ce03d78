//! The Rust mirror of `ebpf/include/skiff_lb.h` — same fields, order and sizes (the tests
//! check the sizes against the header's). Addresses and ports are kept in network byte order,
//! as the programs compare them with the socket's.

use std::net::Ipv4Addr;

/// `struct skiff_lb4_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Lb4Key {
    pub address: u32,
    pub dport: u16,
    pub slot: u16,
    pub proto: u8,
    pub scope: u8,
    pub pad: [u8; 2],
}

/// `SKIFF_LB_SCOPE_ALL`: every backend.
pub const SCOPE_ALL: u8 = 0;
/// `SKIFF_LB_SCOPE_EXT`: this node's backends, for traffic from outside
/// (`externalTrafficPolicy: Local`).
pub const SCOPE_EXT: u8 = 1;

/// `struct skiff_lb4_service`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lb4Service {
    pub backend_id: u32,
    pub count: u16,
    pub rev_nat_index: u16,
    pub affinity_timeout: u32,
    pub flags: u32,
}

/// `SKIFF_LB_F_NO_BACKENDS`.
pub const F_NO_BACKENDS: u32 = 1;
/// `SKIFF_LB_F_EXTERNAL`: served by tc to traffic from outside the node.
pub const F_EXTERNAL: u32 = 2;
/// `SKIFF_LB_F_NODEPORT`: the `{0.0.0.0, nodePort}` wildcard.
pub const F_NODEPORT: u32 = 4;

/// `struct skiff_lb4_counters` (one per CPU in the map; summed by the reader).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lb4Counters {
    pub connects: u64,
    pub refused: u64,
    pub flows: u64,
    pub dropped: u64,
}

/// `struct skiff_lb4_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lb4Config {
    pub node_ip: u32,
    pub snat_ip: u32,
    pub pod_net: u32,
    pub pod_mask: u32,
    pub host_netns: u64,
    pub nat_port_min: u16,
    pub nat_port_max: u16,
    pub mac: [u8; 6],
    pub pad: [u8; 6],
}

/// `struct skiff_lb4_tuple`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Lb4Tuple {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub pad: [u8; 3],
}

/// `struct skiff_lb4_nat`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lb4Nat {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
    pub backend_id: u32,
    pub flags: u32,
    pub pad: u32,
    pub last_seen_ns: u64,
}

/// `struct skiff_lb4_backend`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Lb4Backend {
    pub address: u32,
    pub port: u16,
    pub proto: u8,
    pub flags: u8,
}

// SAFETY: plain #[repr(C)] integers with explicit padding fields: every bit pattern is valid
// and there is no implicit padding (sizes checked in the tests).
unsafe impl aya::Pod for Lb4Key {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4Service {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4Backend {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4Config {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4Counters {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4Tuple {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4Nat {}

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// A frontend's identity: address, port, protocol, scope (host order).
pub type FrontendId = (Ipv4Addr, u16, u8, u8);

/// A frontend or slot key from host-order values.
pub fn key((address, port, proto, scope): FrontendId, slot: u16) -> Lb4Key {
    Lb4Key {
        address: u32::from(address).to_be(),
        dport: port.to_be(),
        slot,
        proto,
        scope,
        pad: [0; 2],
    }
}

/// An address as the maps hold it (network order).
pub fn addr(ip: Ipv4Addr) -> u32 {
    u32::from(ip).to_be()
}

pub fn backend(address: Ipv4Addr, port: u16, proto: u8) -> Lb4Backend {
    Lb4Backend {
        address: u32::from(address).to_be(),
        port: port.to_be(),
        proto,
        flags: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_header() {
        // skiff_lb.h: key 12 bytes, service 16, backend 8, config 40, tuple 16, nat 32.
        assert_eq!(size_of::<Lb4Key>(), 12);
        assert_eq!(size_of::<Lb4Service>(), 16);
        assert_eq!(size_of::<Lb4Backend>(), 8);
        assert_eq!(size_of::<Lb4Config>(), 40);
        assert_eq!(size_of::<Lb4Tuple>(), 16);
        assert_eq!(size_of::<Lb4Nat>(), 32);
        assert_eq!(size_of::<Lb4Counters>(), 32);
        let header = include_str!("../../../ebpf/include/skiff_lb.h");
        for field in [
            "__be32 address;",
            "__be16 dport;",
            "__u16 slot;",
            "__u8 proto;",
            "__u16 rev_nat_index;",
            "__u32 affinity_timeout;",
            "__u8 scope;",
            "__u64 host_netns;",
            "__u8 mac[6];",
            "__u64 last_seen_ns;",
        ] {
            assert!(header.contains(field), "{field} is no longer in skiff_lb.h");
        }
    }

    #[test]
    fn keys_are_in_network_order() {
        let k = key(
            (Ipv4Addr::new(10, 96, 0, 10), 53, IPPROTO_UDP, SCOPE_ALL),
            0,
        );
        assert_eq!(k.address.to_ne_bytes(), [10, 96, 0, 10]);
        assert_eq!(k.dport.to_ne_bytes(), [0, 53]);
    }
}
