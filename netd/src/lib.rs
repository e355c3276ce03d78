//! skiff's pod network — flannel's role plus its CNI plugin, in two halves:
//!
//! - [`cni`]: `skiff-cni`, the CNI plugin the kubelet runs for every pod (the `skiff` binary
//!   answers to that name, k3s-style). ADD gives the pod a veth whose host end joins the node's
//!   bridge `cni0`, an address from the node's `spec.podCIDR` out of its own file-backed IPAM,
//!   a default route via the bridge and the overlay's MTU.
//! - [`overlay`] and [`agent`]: `skiff netd`, the per-node daemon. It creates the node's VXLAN
//!   device, publishes its VTEP on the Node object, programs route + ARP + FDB entries for every
//!   other node from a watch of Nodes, source-NATs pod traffic leaving the cluster network
//!   ([`egress`]) and writes the CNI configuration that makes the kubelet report the node Ready.
//!
//! - [`proxy`]: the service proxy in eBPF (kube-proxy's role), run by the same agent.
//!
//! Kernel state is programmed over rtnetlink ([`netlink`]), never by running `ip`.

pub mod agent;
pub mod cni;
pub mod egress;
pub mod netlink;
pub mod overlay;
pub mod proxy;
