/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Forwarding past the host stack: route with bpf_fib_lookup, write the headers
 * (forward_write: MACs, TTL, what the NAT translated) and redirect.
 * tot_len stays 0: with the real length GRO aggregates get FRAG_NEEDED.
 * After a neighbour flush the lookup says NO_NEIGH: bpf_redirect_neigh
 * resolves it for us.
 */
#ifndef BVCNI_FIB_H
#define BVCNI_FIB_H

#include "maps.h"
#include "ipv4.h"
#include "forward.h"

/*
 * The last route taken, per CPU and per user (FIB_SLOT_*): the next hop
 * (device, MACs) of one destination, for FIB_CACHE_NS. A lookup costs
 * ~150 ns per packet, and a stream of short connections to one service, like
 * a stream of packets to one node, repeats the same one; with the cache a
 * route or neighbour change takes effect within FIB_CACHE_NS (on the coarse
 * clock: up to one tick more) instead of at once. NO_NEIGH answers are never
 * cached. Not pinned and not named bvcni_*: no part of the ABI, private to
 * each object, and a replaced program must not start from its predecessor's
 * next hops.
 */
#define FIB_CACHE_NS (10ULL * 1000 * 1000)

enum fib_slot {
	FIB_SLOT_MASQUERADE, /* pods to the outside world */
	FIB_SLOT_OVERLAY,    /* encapsulated packets to other nodes */
	FIB_SLOTS,
};

struct fib_cache_entry {
	__u64 expires_ns;
	__u32 saddr;
	__u32 daddr;
	__u32 ifindex;
	__u32 nexthop;
	__u8  smac[6];
	__u8  dmac[6];
	__u8  tos;
	__u8  pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct fib_cache_entry);
	__uint(max_entries, FIB_SLOTS);
} fib_cache SEC(".maps");

struct fib_hop {
	__u32 ifindex;
	__u32 nexthop;  /* network order: the gateway, or the destination itself on a link */
	__u8  smac[6];
	__u8  dmac[6];
	__u8  has_macs; /* 0: the neighbour is not resolved, smac and dmac are unset */
};

/* TC_ACT_OK with the hop (without its MACs when the neighbour is unknown), or DROP(REASON_DROP_FIB). */
static __always_inline int fib_next_hop(struct __sk_buff *skb, __u32 slot, __u32 in_ifindex, __u32 saddr,
					__u32 daddr, __u8 tos, struct fib_hop *hop)
{
	struct bpf_fib_lookup p = {};
	struct fib_cache_entry *c;
	__u64 now = bpf_ktime_get_coarse_ns();
	long rc;

	c = bpf_map_lookup_elem(&fib_cache, &slot);
	if (c && c->daddr == daddr && c->saddr == saddr && c->tos == tos && now < c->expires_ns) {
		hop->ifindex = c->ifindex;
		hop->nexthop = c->nexthop;
		__builtin_memcpy(hop->smac, c->smac, 6);
		__builtin_memcpy(hop->dmac, c->dmac, 6);
		hop->has_macs = 1;
		return TC_ACT_OK;
	}

	p.family = AF_INET;
	p.tos = tos;
	p.ipv4_src = saddr;
	p.ipv4_dst = daddr;
	p.ifindex = in_ifindex;
	rc = bpf_fib_lookup(skb, &p, sizeof(p), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return DROP(REASON_DROP_FIB);
	hop->ifindex = p.ifindex;
	hop->nexthop = p.ipv4_dst; /* the lookup put the gateway there, if any */
	hop->has_macs = rc == BPF_FIB_LKUP_RET_SUCCESS;
	if (!hop->has_macs)
		return TC_ACT_OK;
	__builtin_memcpy(hop->smac, p.smac, 6);
	__builtin_memcpy(hop->dmac, p.dmac, 6);
	if (c) {
		c->expires_ns = now + FIB_CACHE_NS;
		c->saddr = saddr;
		c->daddr = daddr;
		c->tos = tos;
		c->ifindex = p.ifindex;
		c->nexthop = p.ipv4_dst;
		__builtin_memcpy(c->smac, p.smac, 6);
		__builtin_memcpy(c->dmac, p.dmac, 6);
	}
	return TC_ACT_OK;
}

static __always_inline int fib_redirect(struct __sk_buff *skb, __u32 in_ifindex, __u32 saddr, __u32 daddr,
					__u8 tos, const struct nat_xlate *x)
{
	struct fib_hop hop;
	int ret = fib_next_hop(skb, FIB_SLOT_MASQUERADE, in_ifindex, saddr, daddr, tos, &hop);

	if (ret)
		return ret;
	if (!hop.has_macs) {
		ret = forward_write(skb, 0, 0, x);
		if (ret)
			return ret;
		ret = bpf_redirect_neigh(hop.ifindex, 0, 0, 0);
		return ret == TC_ACT_REDIRECT ? ret : DROP(REASON_DROP_REDIRECT);
	}
	ret = forward_write(skb, hop.smac, hop.dmac, x);
	if (ret)
		return ret;
	ret = bpf_redirect(hop.ifindex, 0);
	return ret == TC_ACT_REDIRECT ? ret : DROP(REASON_DROP_REDIRECT);
}

#endif
