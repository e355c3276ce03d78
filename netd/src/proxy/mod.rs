//! The node's service proxy (kube-proxy's role) in eBPF:
//! - in-cluster traffic (ClusterIP, and NodePorts or LoadBalancer IPs dialled from a pod or the
//!   node) by socket-level load balancing — `connect()`/`sendmsg()` to a Service address go
//!   straight to a backend, chosen in the kernel, with no per-packet NAT — attached to this
//!   node's cgroup subtree only (several nodes share one kernel in the local cluster);
//! - traffic from outside (NodePort on the node's address, LoadBalancer IPs, externalIPs) by tc
//!   programs on the node's interface, with their own conntrack and NAT.
//!
//! - [`model`]: Services + EndpointSlices → frontends and their backends (pure).
//! - [`maps`]: the Rust mirror of `ebpf/include/skiff_lb.h`.
//! - [`datapath`]: loading, attaching and pinning the programs; incremental map writes.
//! - [`announce`]: which node answers ARP for each LoadBalancer IP.
//! - [`health`]: the health-check node ports of `externalTrafficPolicy: Local` Services.
//! - [`sync`]: the watch loop, `/metrics` and the `/services` listing.
//!
//! Not yet (issue 18): a per-packet path for pods whose sockets the cgroup programs cannot see,
//! IPv6.

pub mod announce;
pub mod datapath;
pub mod health;
pub mod maps;
pub mod model;
pub mod sync;
