/* The service proxy's map layouts and definitions: the one header every program includes and
 * the Rust side mirrors (netd/src/proxy/maps.rs: #[repr(C)], same field order and sizes; its
 * tests check the sizes). Every program object defines the same maps; the agent pins them by
 * name, so the socket programs and the tc programs share one set.
 *
 * Services are Cilium's layout, simplified: a frontend key {VIP, port, proto, scope} with slot 0
 * holds the backend count; slots 1..count hold backend ids; backends are shared by id. Updates
 * keep readers consistent: backends and slots are written before the count grows, the count
 * shrinks before slots are removed.
 *
 * A NodePort is the frontend {0.0.0.0, nodePort}: the socket programs use it for a node address
 * (or the node's own loopback), the tc programs for packets to this node's address.
 */
#ifndef SKIFF_LB_H
#define SKIFF_LB_H

#include <linux/types.h>

/* Sized for 10,000 Services with 100,000 endpoints (frontend + one slot per backend); the
 * hash maps allocate entries on use (BPF_F_NO_PREALLOC), so the limit costs no memory. */
#define SKIFF_LB_MAX_SERVICES 262144
#define SKIFF_LB_MAX_BACKENDS 262144
#define SKIFF_LB_MAX_REVNAT 65536
#define SKIFF_LB_MAX_AFFINITY 65536
#define SKIFF_LB_MAX_CT 131072
#define SKIFF_LB_MAX_NODE_ADDRS 4096
#define SKIFF_LB_MAX_ANNOUNCE 4096

/* Frontend scopes: every backend (east-west, and north-south unless a SCOPE_EXT entry exists),
 * or only this node's (externalTrafficPolicy: Local, north-south). */
#define SKIFF_LB_SCOPE_ALL 0
#define SKIFF_LB_SCOPE_EXT 1

struct skiff_lb4_key {
	__be32 address;   /* the service's IP */
	__be16 dport;     /* the service's port */
	__u16 slot;       /* 0: the frontend; 1..count: a backend slot */
	__u8 proto;       /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 scope;       /* SKIFF_LB_SCOPE_* */
	__u8 pad[2];
};

struct skiff_lb4_service {
	__u32 backend_id;       /* slot > 0: which backend */
	__u16 count;            /* slot 0: how many slots */
	__u16 rev_nat_index;    /* slot 0: the frontend's id (reverse translation, affinity) */
	__u32 affinity_timeout; /* slot 0: sessionAffinity ClientIP timeout, seconds; 0 = none */
	__u32 flags;            /* slot 0: SKIFF_LB_F_* */
};

/* The service exists but has no ready backend: connect() fails at once. */
#define SKIFF_LB_F_NO_BACKENDS 1
/* Served to traffic from outside the node (NodePort, LoadBalancer IP, externalIP) by tc. */
#define SKIFF_LB_F_EXTERNAL 2
/* The NodePort wildcard {0.0.0.0, nodePort}. */
#define SKIFF_LB_F_NODEPORT 4

struct skiff_lb4_backend {
	__be32 address;
	__be16 port;
	__u8 proto;
	__u8 flags;
};

/* Socket cookie + the backend it was sent to → the service address to show instead. */
struct skiff_lb4_revnat_key {
	__u64 cookie;
	__be32 address;
	__be16 port;
	__u16 pad;
};

struct skiff_lb4_revnat {
	__be32 address;
	__be16 port;
	__u16 rev_nat_index;
};

/* sessionAffinity: ClientIP — the client is its network namespace (sockets have no source
 * address yet at connect time), as Cilium's socket LB does. */
struct skiff_lb4_affinity_key {
	__u64 client;
	__u16 rev_nat_index;
	__u16 pad[3];
};

struct skiff_lb4_affinity {
	__u32 backend_id;
	__u32 pad;
	__u64 last_used_ns;
};

/* Per frontend (indexed by rev_nat_index), per CPU: what the programs did with it. */
struct skiff_lb4_counters {
	__u64 connects;  /* socket path: connect()/sendmsg() translated */
	__u64 refused;   /* socket path: refused, no endpoint */
	__u64 flows;     /* packet path: new flows from outside */
	__u64 dropped;   /* packet path: dropped, no (local) endpoint */
};

/* The node, written by the agent at start (array of one). */
struct skiff_lb4_config {
	__be32 node_ip;      /* this node's address: NodePort destination on the tc path */
	__be32 snat_ip;      /* source for packets forwarded to another node's backend */
	__be32 pod_net;      /* this node's pod range: backends in it are local */
	__be32 pod_mask;
	__u64 host_netns;    /* the node's network namespace cookie (127.0.0.1:nodePort) */
	__u16 nat_port_min;  /* host order: source ports for forwarded NodePort traffic */
	__u16 nat_port_max;
	__u8 mac[6];         /* the node interface's MAC (ARP replies) */
	__u8 pad[6];
};

/* A packet's addresses as it arrives (ingress) or leaves (egress). */
struct skiff_lb4_tuple {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* Per-packet NAT state: what a packet with that tuple becomes. */
struct skiff_lb4_nat {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u32 backend_id;   /* forward entries: the chosen backend */
	__u32 flags;        /* SKIFF_LB_NAT_* */
	__u32 pad;
	__u64 last_seen_ns;
};

/* The packet leaves through a FIB lookup and redirect (another node's backend, or the reply to
 * a client of a forwarded flow) instead of the node's own stack. */
#define SKIFF_LB_NAT_REDIRECT 1
/* A reply: rewritten back to the service address. */
#define SKIFF_LB_NAT_REPLY 2

#ifdef __bpf__
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SKIFF_LB_MAX_SERVICES);
	__type(key, struct skiff_lb4_key);
	__type(value, struct skiff_lb4_service);
} skiff_lb4_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SKIFF_LB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct skiff_lb4_backend);
} skiff_lb4_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SKIFF_LB_MAX_REVNAT);
	__type(key, struct skiff_lb4_revnat_key);
	__type(value, struct skiff_lb4_revnat);
} skiff_lb4_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SKIFF_LB_MAX_AFFINITY);
	__type(key, struct skiff_lb4_affinity_key);
	__type(value, struct skiff_lb4_affinity);
} skiff_lb4_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct skiff_lb4_config);
} skiff_lb4_config SEC(".maps");

/* Every node's address (value unused): a NodePort dialled on any of them is translated. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKIFF_LB_MAX_NODE_ADDRS);
	__type(key, __be32);
	__type(value, __u32);
} skiff_lb4_node_addrs SEC(".maps");

/* LoadBalancer IPs this node answers ARP for (the elected announcer; value unused). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SKIFF_LB_MAX_ANNOUNCE);
	__type(key, __be32);
	__type(value, __u32);
} skiff_lb4_announce SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SKIFF_LB_MAX_CT);
	__type(key, struct skiff_lb4_tuple);
	__type(value, struct skiff_lb4_nat);
} skiff_lb4_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SKIFF_LB_MAX_REVNAT);
	__type(key, __u32);
	__type(value, struct skiff_lb4_counters);
} skiff_lb4_counters SEC(".maps");

static __always_inline struct skiff_lb4_counters *skiff_lb4_count(__u16 rev_nat_index)
{
	__u32 index = rev_nat_index;
	return bpf_map_lookup_elem(&skiff_lb4_counters, &index);
}

static __always_inline struct skiff_lb4_config *skiff_lb4_get_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&skiff_lb4_config, &zero);
}
#endif

#endif
