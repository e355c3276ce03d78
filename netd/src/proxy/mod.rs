//! The node's service proxy (kube-proxy's role) in eBPF: ClusterIP by socket-level load
//! balancing — `connect()`/`sendmsg()` to a Service address go straight to a backend, chosen in
//! the kernel, with no per-packet NAT — attached to this node's cgroup subtree only (several
//! nodes share one kernel in the local cluster).
//!
//! - [`model`]: Services + EndpointSlices → frontends and their backends (pure).
//! - [`maps`]: the Rust mirror of `ebpf/include/skiff_lb.h`.
//! - [`datapath`]: loading, attaching and pinning the programs; incremental map writes.
//! - [`sync`]: the watch loop, `/metrics` and the `/services` listing.
//!
//! Not yet (issue 18): NodePort, LoadBalancer and externalIPs (tc programs), the per-packet
//! path for traffic socket hooks cannot see, IPv6.

pub mod datapath;
pub mod maps;
pub mod model;
pub mod sync;
