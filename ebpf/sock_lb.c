/* Socket-level load balancing for ClusterIP Services (Cilium's bpf_sock.c idea, our own code):
 * cgroup sock_addr programs rewrite the destination of connect()/sendmsg() from a service
 * address to a backend, so the socket talks to the backend directly — no per-packet NAT, no
 * conntrack entry for the virtual IP — and recvmsg()/getpeername() show the service address
 * back. Attached to one node's cgroup subtree only: several nodes share this kernel.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/errno.h>
#include <bpf/bpf_endian.h>

#include "skiff_lb.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline __u16 ctx_port(struct bpf_sock_addr *ctx)
{
	/* The port is the low 16 bits of a __u32, in network order. */
	volatile __u32 port = ctx->user_port;
	return (__u16)port;
}

/* Picks a backend of `svc` for this socket; 0 when there is none. */
static __always_inline __u32 pick_backend(struct bpf_sock_addr *ctx, struct skiff_lb4_key *key,
					  const struct skiff_lb4_service *svc)
{
	struct skiff_lb4_affinity_key akey = {};
	struct skiff_lb4_affinity *aff = 0;
	struct skiff_lb4_service *slot;
	__u64 now = 0;
	__u32 pick;

	if (svc->affinity_timeout) {
		akey.client = bpf_get_netns_cookie(ctx);
		akey.rev_nat_index = svc->rev_nat_index;
		now = bpf_ktime_get_ns();
		aff = bpf_map_lookup_elem(&skiff_lb4_affinity, &akey);
		if (aff && now - aff->last_used_ns <= (__u64)svc->affinity_timeout * 1000000000ULL &&
		    bpf_map_lookup_elem(&skiff_lb4_backends, &aff->backend_id)) {
			aff->last_used_ns = now;
			return aff->backend_id;
		}
	}
	/* TCP: random; UDP: by socket, so one socket's datagrams stay on one backend. */
	if (key->proto == IPPROTO_UDP)
		pick = (__u32)bpf_get_socket_cookie(ctx);
	else
		pick = bpf_get_prandom_u32();
	key->slot = (__u16)(pick % svc->count) + 1;
	slot = bpf_map_lookup_elem(&skiff_lb4_services, key);
	key->slot = 0;
	if (!slot)
		return 0;
	if (svc->affinity_timeout) {
		struct skiff_lb4_affinity fresh = { .backend_id = slot->backend_id, .last_used_ns = now };
		bpf_map_update_elem(&skiff_lb4_affinity, &akey, &fresh, BPF_ANY);
	}
	return slot->backend_id;
}

/* A NodePort dialled from this node or its pods: any node's address, or the node's own
 * loopback (only in the node's network namespace: a pod's 127.0.0.1 is its own). */
static __always_inline struct skiff_lb4_service *nodeport_lookup(struct bpf_sock_addr *ctx,
								 struct skiff_lb4_key *key)
{
	struct skiff_lb4_service *svc;
	__be32 daddr = key->address;

	if ((bpf_ntohl(daddr) >> 24) == 127) {
		struct skiff_lb4_config *config = skiff_lb4_get_config();
		if (!config || config->host_netns != bpf_get_netns_cookie(ctx))
			return 0;
	} else if (!bpf_map_lookup_elem(&skiff_lb4_node_addrs, &daddr)) {
		return 0;
	}
	key->address = 0;
	svc = bpf_map_lookup_elem(&skiff_lb4_services, key);
	if (!svc || !(svc->flags & SKIFF_LB_F_NODEPORT)) {
		key->address = daddr;
		return 0;
	}
	return svc;
}

/* Rewrites a service destination to a backend; 1 = let the call go on, 0 = fail it. */
static __always_inline int translate(struct bpf_sock_addr *ctx)
{
	struct skiff_lb4_key key = {};
	struct skiff_lb4_service *svc;
	struct skiff_lb4_backend *backend;
	__u32 backend_id;

	if (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_UDP)
		return 1;
	key.address = ctx->user_ip4;
	key.dport = ctx_port(ctx);
	key.proto = ctx->protocol;
	svc = bpf_map_lookup_elem(&skiff_lb4_services, &key);
	if (!svc)
		svc = nodeport_lookup(ctx, &key);
	if (!svc)
		return 1;
	struct skiff_lb4_counters *counters = skiff_lb4_count(svc->rev_nat_index);
	if (svc->count == 0) {
		/* A Service without endpoints refuses at once, as kube-proxy's REJECT does. */
		if (counters)
			counters->refused++;
		bpf_set_retval(-ECONNREFUSED);
		return 0;
	}
	if (counters)
		counters->connects++;
	backend_id = pick_backend(ctx, &key, svc);
	if (!backend_id)
		return 1;
	backend = bpf_map_lookup_elem(&skiff_lb4_backends, &backend_id);
	if (!backend)
		return 1;

	struct skiff_lb4_revnat_key rkey = {
		.cookie = bpf_get_socket_cookie(ctx),
		.address = backend->address,
		.port = backend->port,
	};
	struct skiff_lb4_revnat rval = {
		/* A NodePort shows the address that was dialled, not the wildcard. */
		.address = ctx->user_ip4,
		.port = key.dport,
		.rev_nat_index = svc->rev_nat_index,
	};
	bpf_map_update_elem(&skiff_lb4_revnat, &rkey, &rval, BPF_ANY);
	ctx->user_ip4 = backend->address;
	ctx->user_port = (__u32)backend->port;
	return 1;
}

/* Shows the service address where the socket really talks to a backend. */
static __always_inline int reverse(struct bpf_sock_addr *ctx)
{
	struct skiff_lb4_revnat_key rkey = {
		.cookie = bpf_get_socket_cookie(ctx),
		.address = ctx->user_ip4,
		.port = ctx_port(ctx),
	};
	struct skiff_lb4_revnat *rval = bpf_map_lookup_elem(&skiff_lb4_revnat, &rkey);

	if (rval) {
		ctx->user_ip4 = rval->address;
		ctx->user_port = (__u32)rval->port;
	}
	return 1;
}

SEC("cgroup/connect4")
int skiff_sock4_connect(struct bpf_sock_addr *ctx)
{
	return translate(ctx);
}

SEC("cgroup/sendmsg4")
int skiff_sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	return translate(ctx);
}

SEC("cgroup/recvmsg4")
int skiff_sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	return reverse(ctx);
}

SEC("cgroup/getpeername4")
int skiff_sock4_getpeername(struct bpf_sock_addr *ctx)
{
	return reverse(ctx);
}
