/* Per-packet load balancing for traffic from outside the node (Cilium's nodeport.h idea, our
 * own code): NodePort on the node's address, LoadBalancer IPs and externalIPs. tc programs on
 * the node's interface:
 *
 * - ingress (node interface): a new flow to a frontend picks a backend (sessionAffinity by
 *   client IP), and a conntrack entry pins it. A backend on this node gets the packet with the
 *   client's address kept (DNAT only; the stack delivers it, so the kernel's conntrack sees the
 *   flow and the reply is not masqueraded); a backend on another node gets it with the source
 *   rewritten to this node's overlay address and a port from the NAT range (SNAT, so the reply
 *   comes back here), sent by a FIB lookup and redirect. Replies of forwarded flows are
 *   rewritten back (source = the frontend, destination = the client) and redirected out.
 * - ingress (the VXLAN device): only those replies (they come back through the overlay).
 * - egress (node interface): replies of local backends get the frontend as their source.
 * - ARP requests for a LoadBalancer IP this node announces are answered in place (the L2 mode
 *   of MetalLB and ServiceLB).
 *
 * Not handled: IP options past the fixed header for ports (read with ihl), fragments (only the
 * first carries ports; later ones pass unchanged), ICMP errors about translated flows.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <stddef.h>
#include <bpf/bpf_endian.h>

#include "skiff_lb.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_INET 2
/* linux/if_arp.h pulls in libc headers that do not build for BPF. */
#define ARPHRD_ETHER 1
#define ARPOP_REQUEST 1
#define ARPOP_REPLY 2
struct arphdr {
	__be16 ar_hrd;
	__be16 ar_pro;
	__u8 ar_hln;
	__u8 ar_pln;
	__be16 ar_op;
};
#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))
#define IP_SRC_OFF (ETH_HLEN + offsetof(struct iphdr, saddr))
#define IP_DST_OFF (ETH_HLEN + offsetof(struct iphdr, daddr))
/* Affinity keys of the packet path: the client's address, marked so they never equal a
 * socket path key (a network namespace cookie). */
#define AFFINITY_CLIENT_IP (1ULL << 63)

struct packet {
	struct skiff_lb4_tuple tuple;
	__u32 l4_off;
	__u32 csum_off;
	__u8 udp_no_csum;
};

/* Reads the IPv4 TCP/UDP packet's tuple; 0 when it is not one (or a later fragment). */
static __always_inline int parse(struct __sk_buff *skb, struct packet *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	if (ip->ihl < 5 || (ip->frag_off & bpf_htons(0x1fff)))
		return 0;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return 0;
	p->l4_off = ETH_HLEN + ip->ihl * 4;
	p->tuple.saddr = ip->saddr;
	p->tuple.daddr = ip->daddr;
	p->tuple.proto = ip->protocol;
	__be16 ports[2];
	if (bpf_skb_load_bytes(skb, p->l4_off, ports, sizeof(ports)))
		return 0;
	p->tuple.sport = ports[0];
	p->tuple.dport = ports[1];
	if (ip->protocol == IPPROTO_TCP) {
		p->csum_off = p->l4_off + offsetof(struct tcphdr, check);
	} else {
		__sum16 csum = 0;
		p->csum_off = p->l4_off + offsetof(struct udphdr, check);
		if (bpf_skb_load_bytes(skb, p->csum_off, &csum, sizeof(csum)))
			return 0;
		p->udp_no_csum = csum == 0;
	}
	return 1;
}

static __always_inline int set_addr(struct __sk_buff *skb, struct packet *p, __u32 off, __be32 old,
				    __be32 new)
{
	__u64 l4_flags = BPF_F_PSEUDO_HDR | sizeof(new);

	if (old == new)
		return 0;
	if (p->tuple.proto == IPPROTO_UDP)
		l4_flags |= BPF_F_MARK_MANGLED_0;
	if (!p->udp_no_csum && bpf_l4_csum_replace(skb, p->csum_off, old, new, l4_flags))
		return -1;
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old, new, sizeof(new)))
		return -1;
	return bpf_skb_store_bytes(skb, off, &new, sizeof(new), 0);
}

static __always_inline int set_port(struct __sk_buff *skb, struct packet *p, __u32 off, __be16 old,
				    __be16 new)
{
	__u64 l4_flags = sizeof(new);

	if (old == new)
		return 0;
	if (p->tuple.proto == IPPROTO_UDP)
		l4_flags |= BPF_F_MARK_MANGLED_0;
	if (!p->udp_no_csum && bpf_l4_csum_replace(skb, p->csum_off, old, new, l4_flags))
		return -1;
	return bpf_skb_store_bytes(skb, p->l4_off + off, &new, sizeof(new), 0);
}

/* Rewrites the packet to what `nat` says; 0 on success. */
static __always_inline int rewrite(struct __sk_buff *skb, struct packet *p,
				   const struct skiff_lb4_nat *nat)
{
	if (set_addr(skb, p, IP_SRC_OFF, p->tuple.saddr, nat->saddr) ||
	    set_addr(skb, p, IP_DST_OFF, p->tuple.daddr, nat->daddr) ||
	    set_port(skb, p, 0, p->tuple.sport, nat->sport) ||
	    set_port(skb, p, 2, p->tuple.dport, nat->dport))
		return -1;
	return 0;
}

/* Sends the (rewritten) packet where the routing table says, skipping the node's stack. */
static __always_inline int redirect(struct __sk_buff *skb, __be32 saddr, __be32 daddr)
{
	struct bpf_fib_lookup fib = {};
	int rc;

	fib.family = AF_INET;
	fib.ipv4_src = saddr;
	fib.ipv4_dst = daddr;
	fib.ifindex = skb->ingress_ifindex ? skb->ingress_ifindex : skb->ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), fib.dmac, ETH_ALEN, 0) ||
		    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_source), fib.smac, ETH_ALEN, 0))
			return TC_ACT_SHOT;
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib.ifindex, 0, 0, 0);
	return TC_ACT_SHOT;
}

/* The frontend of a packet from outside: an exact address (LoadBalancer IP, externalIP), or the
 * NodePort wildcard when it is addressed to this node. Scope EXT (externalTrafficPolicy: Local)
 * first. */
static __always_inline struct skiff_lb4_service *lookup(struct skiff_lb4_key *key,
							const struct skiff_lb4_config *config)
{
	struct skiff_lb4_service *svc;

	key->scope = SKIFF_LB_SCOPE_EXT;
	svc = bpf_map_lookup_elem(&skiff_lb4_services, key);
	if (!svc) {
		key->scope = SKIFF_LB_SCOPE_ALL;
		svc = bpf_map_lookup_elem(&skiff_lb4_services, key);
	}
	if (svc && (svc->flags & SKIFF_LB_F_EXTERNAL))
		return svc;
	if (key->address != config->node_ip)
		return 0;
	key->address = 0;
	key->scope = SKIFF_LB_SCOPE_EXT;
	svc = bpf_map_lookup_elem(&skiff_lb4_services, key);
	if (!svc) {
		key->scope = SKIFF_LB_SCOPE_ALL;
		svc = bpf_map_lookup_elem(&skiff_lb4_services, key);
	}
	if (svc && (svc->flags & SKIFF_LB_F_EXTERNAL) && (svc->flags & SKIFF_LB_F_NODEPORT))
		return svc;
	return 0;
}

static __always_inline __u32 pick_backend(struct skiff_lb4_key *key,
					  const struct skiff_lb4_service *svc, __be32 client)
{
	struct skiff_lb4_affinity_key akey = {};
	struct skiff_lb4_affinity *aff;
	struct skiff_lb4_service *slot;
	__u64 now = bpf_ktime_get_ns();

	if (svc->affinity_timeout) {
		akey.client = AFFINITY_CLIENT_IP | bpf_ntohl(client);
		akey.rev_nat_index = svc->rev_nat_index;
		aff = bpf_map_lookup_elem(&skiff_lb4_affinity, &akey);
		if (aff && now - aff->last_used_ns <= (__u64)svc->affinity_timeout * 1000000000ULL &&
		    bpf_map_lookup_elem(&skiff_lb4_backends, &aff->backend_id)) {
			aff->last_used_ns = now;
			return aff->backend_id;
		}
	}
	key->slot = (__u16)(bpf_get_prandom_u32() % svc->count) + 1;
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

/* A free source port for a forwarded flow to `backend`: one whose reply tuple is unused. */
static __always_inline __be16 nat_port(const struct skiff_lb4_config *config,
				       struct skiff_lb4_tuple *reply)
{
	__u32 span = (__u32)config->nat_port_max - config->nat_port_min + 1;

	for (int i = 0; i < 8; i++) {
		reply->dport = bpf_htons((__u16)(config->nat_port_min + bpf_get_prandom_u32() % span));
		if (!bpf_map_lookup_elem(&skiff_lb4_ct, reply))
			return reply->dport;
	}
	return 0;
}

/* A new flow to a frontend: picks the backend, records both directions, returns the forward
 * entry (0: drop). */
static __always_inline int new_flow(struct packet *p, struct skiff_lb4_key *key,
				    const struct skiff_lb4_service *svc,
				    const struct skiff_lb4_config *config, struct skiff_lb4_nat *fwd)
{
	struct skiff_lb4_backend *backend;
	struct skiff_lb4_tuple reply = {};
	struct skiff_lb4_nat rev = {};
	__u32 backend_id;
	int local;

	if (svc->count == 0)
		return 0;
	backend_id = pick_backend(key, svc, p->tuple.saddr);
	backend = backend_id ? bpf_map_lookup_elem(&skiff_lb4_backends, &backend_id) : 0;
	if (!backend)
		return 0;
	local = (backend->address & config->pod_mask) == config->pod_net ||
		backend->address == config->node_ip;

	fwd->daddr = backend->address;
	fwd->dport = backend->port;
	fwd->backend_id = backend_id;
	fwd->last_seen_ns = bpf_ktime_get_ns();
	reply.saddr = backend->address;
	reply.sport = backend->port;
	reply.proto = p->tuple.proto;
	if (local) {
		/* The client's address is kept: the stack delivers it, the reply leaves through the
		 * node interface's egress. */
		fwd->saddr = p->tuple.saddr;
		fwd->sport = p->tuple.sport;
		reply.daddr = p->tuple.saddr;
		reply.dport = p->tuple.sport;
	} else {
		fwd->saddr = config->snat_ip;
		reply.daddr = config->snat_ip;
		fwd->sport = nat_port(config, &reply);
		if (!fwd->sport)
			return 0;
		fwd->flags = SKIFF_LB_NAT_REDIRECT;
		rev.flags = SKIFF_LB_NAT_REDIRECT;
	}
	rev.saddr = p->tuple.daddr;
	rev.sport = p->tuple.dport;
	rev.daddr = p->tuple.saddr;
	rev.dport = p->tuple.sport;
	rev.flags |= SKIFF_LB_NAT_REPLY;
	rev.backend_id = backend_id;
	rev.last_seen_ns = fwd->last_seen_ns;
	if (bpf_map_update_elem(&skiff_lb4_ct, &reply, &rev, BPF_ANY) ||
	    bpf_map_update_elem(&skiff_lb4_ct, &p->tuple, fwd, BPF_ANY))
		return 0;
	return 1;
}

/* Answers an ARP request for an announced LoadBalancer IP in place. */
static __always_inline int arp_reply(struct __sk_buff *skb, const struct skiff_lb4_config *config)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct arphdr *arp = data + ETH_HLEN;
	/* Ethernet/IPv4 ARP body: sha[6] spa[4] tha[6] tpa[4]. */
	__u8 *body = (void *)(arp + 1);
	__u8 sha[ETH_ALEN];
	__be32 spa, tpa;

	if ((void *)(body + 20) > data_end)
		return TC_ACT_OK;
	if (arp->ar_hrd != bpf_htons(ARPHRD_ETHER) || arp->ar_pro != bpf_htons(ETH_P_IP) ||
	    arp->ar_hln != ETH_ALEN || arp->ar_pln != 4 || arp->ar_op != bpf_htons(ARPOP_REQUEST))
		return TC_ACT_OK;
	__builtin_memcpy(&tpa, body + 16, 4);
	if (!bpf_map_lookup_elem(&skiff_lb4_announce, &tpa))
		return TC_ACT_OK;
	__builtin_memcpy(sha, body, ETH_ALEN);
	__builtin_memcpy(&spa, body + 6, 4);

	__builtin_memcpy(eth->h_dest, sha, ETH_ALEN);
	__builtin_memcpy(eth->h_source, config->mac, ETH_ALEN);
	arp->ar_op = bpf_htons(ARPOP_REPLY);
	__builtin_memcpy(body, config->mac, ETH_ALEN);
	__builtin_memcpy(body + 6, &tpa, 4);
	__builtin_memcpy(body + 10, sha, ETH_ALEN);
	__builtin_memcpy(body + 16, &spa, 4);
	return bpf_redirect(skb->ifindex, 0);
}

/* A packet with a conntrack entry: rewritten and sent on. */
static __always_inline int established(struct __sk_buff *skb, struct packet *p,
				       struct skiff_lb4_nat *nat, int egress)
{
	struct skiff_lb4_nat copy = *nat;

	if (!(nat->flags & SKIFF_LB_NAT_REPLY) &&
	    !bpf_map_lookup_elem(&skiff_lb4_backends, &nat->backend_id))
		return -1; /* the backend is gone: a new one is picked */
	nat->last_seen_ns = bpf_ktime_get_ns();
	if (rewrite(skb, p, &copy))
		return TC_ACT_SHOT;
	if (!egress && (copy.flags & SKIFF_LB_NAT_REDIRECT))
		return redirect(skb, copy.saddr, copy.daddr);
	return TC_ACT_OK;
}

SEC("classifier")
int skiff_tc_ingress(struct __sk_buff *skb)
{
	struct skiff_lb4_config *config = skiff_lb4_get_config();
	struct skiff_lb4_service *svc;
	struct skiff_lb4_nat *nat, fwd = {};
	struct skiff_lb4_key key = {};
	struct packet p = {};
	int verdict;

	if (!config)
		return TC_ACT_OK;
	if (skb->protocol == bpf_htons(ETH_P_ARP))
		return arp_reply(skb, config);
	if (!parse(skb, &p))
		return TC_ACT_OK;
	nat = bpf_map_lookup_elem(&skiff_lb4_ct, &p.tuple);
	if (nat && (nat->flags & SKIFF_LB_NAT_REPLY) && !(nat->flags & SKIFF_LB_NAT_REDIRECT))
		nat = 0; /* a local backend's reply direction: only egress uses it */
	if (nat) {
		verdict = established(skb, &p, nat, 0);
		if (verdict >= 0)
			return verdict;
	}
	key.address = p.tuple.daddr;
	key.dport = p.tuple.dport;
	key.proto = p.tuple.proto;
	svc = lookup(&key, config);
	if (!svc)
		return TC_ACT_OK;
	struct skiff_lb4_counters *counters = skiff_lb4_count(svc->rev_nat_index);
	/* No (local) backend: dropped, as kube-proxy does for externalTrafficPolicy: Local. */
	if (!new_flow(&p, &key, svc, config, &fwd)) {
		if (counters)
			counters->dropped++;
		return TC_ACT_SHOT;
	}
	if (counters)
		counters->flows++;
	if (rewrite(skb, &p, &fwd))
		return TC_ACT_SHOT;
	if (fwd.flags & SKIFF_LB_NAT_REDIRECT)
		return redirect(skb, fwd.saddr, fwd.daddr);
	return TC_ACT_OK;
}

/* On the VXLAN device: replies of flows forwarded to other nodes' backends. */
SEC("classifier")
int skiff_tc_overlay(struct __sk_buff *skb)
{
	struct skiff_lb4_nat *nat;
	struct packet p = {};
	int verdict;

	if (!parse(skb, &p))
		return TC_ACT_OK;
	nat = bpf_map_lookup_elem(&skiff_lb4_ct, &p.tuple);
	if (!nat || !(nat->flags & SKIFF_LB_NAT_REPLY) || !(nat->flags & SKIFF_LB_NAT_REDIRECT))
		return TC_ACT_OK;
	verdict = established(skb, &p, nat, 0);
	return verdict >= 0 ? verdict : TC_ACT_OK;
}

/* On the node interface's egress: replies of local backends leave as the frontend. */
SEC("classifier")
int skiff_tc_egress(struct __sk_buff *skb)
{
	struct skiff_lb4_nat *nat;
	struct packet p = {};
	int verdict;

	if (!parse(skb, &p))
		return TC_ACT_OK;
	nat = bpf_map_lookup_elem(&skiff_lb4_ct, &p.tuple);
	if (!nat || !(nat->flags & SKIFF_LB_NAT_REPLY) || (nat->flags & SKIFF_LB_NAT_REDIRECT))
		return TC_ACT_OK;
	verdict = established(skb, &p, nat, 1);
	return verdict >= 0 ? verdict : TC_ACT_OK;
}
