/* The service proxy's map layouts: the one header both sides read. The Rust mirror is
 * netd/src/proxy/maps.rs (#[repr(C)], same field order and sizes; its tests check the sizes).
 *
 * Services are Cilium's layout, simplified: a frontend key {VIP, port, proto} with slot 0 holds
 * the backend count; slots 1..count hold backend ids; backends are shared by id. Updates keep
 * readers consistent: backends and slots are written before the count grows, the count shrinks
 * before slots are removed.
 */
#ifndef SKIFF_LB_H
#define SKIFF_LB_H

#include <linux/types.h>

#define SKIFF_LB_MAX_SERVICES 65536
#define SKIFF_LB_MAX_BACKENDS 65536
#define SKIFF_LB_MAX_REVNAT 65536
#define SKIFF_LB_MAX_AFFINITY 65536

struct skiff_lb4_key {
	__be32 address;   /* the service's IP */
	__be16 dport;     /* the service's port */
	__u16 slot;       /* 0: the frontend; 1..count: a backend slot */
	__u8 proto;       /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad[3];
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

#endif
