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

#ifndef AF_INET
#define AF_INET 2
#endif

/*
 * The last route taken, per CPU: the next hop (device, MACs) of one
 * destination, for FIB_CACHE_NS. A lookup costs ~150 ns per packet and a
 * stream of short connections to one service repeats the same one; with the
 * cache a route or neighbour change takes effect within FIB_CACHE_NS (on the
 * coarse clock: up to one tick more) instead of at once. NO_NEIGH answers are
 * never cached. Not pinned and not named bvcni_*: no part of the ABI, private
 * to this object, and a replaced program must not start from its
 * predecessor's next hops.
 */
#define FIB_CACHE_NS (10ULL * 1000 * 1000)

struct fib_cache_entry {
	__u64 expires_ns;
	__u32 saddr;
	__u32 daddr;
	__u32 ifindex;
	__u8  smac[6];
	__u8  dmac[6];
	__u8  tos;
	__u8  pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct fib_cache_entry);
	__uint(max_entries, 1);
} fib_cache SEC(".maps");

static __always_inline int fib_redirect(struct __sk_buff *skb, __u32 in_ifindex, __u32 saddr, __u32 daddr,
					__u8 tos, const struct nat_xlate *x)
{
	struct bpf_fib_lookup p = {};
	struct fib_cache_entry *c;
	__u64 now = bpf_ktime_get_coarse_ns();
	__u32 zero = 0;
	long rc;
	int ret;

	c = bpf_map_lookup_elem(&fib_cache, &zero);
	if (c && c->daddr == daddr && c->saddr == saddr && c->tos == tos && now < c->expires_ns) {
		ret = forward_write(skb, c->smac, c->dmac, x);
		if (ret)
			return ret;
		ret = bpf_redirect(c->ifindex, 0);
		return ret == TC_ACT_REDIRECT ? ret : DROP(REASON_DROP_REDIRECT);
	}

	p.family = AF_INET;
	p.tos = tos;
	p.ipv4_src = saddr;
	p.ipv4_dst = daddr;
	p.ifindex = in_ifindex;
	rc = bpf_fib_lookup(skb, &p, sizeof(p), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return DROP(REASON_DROP_FIB);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		ret = forward_write(skb, 0, 0, x);
		if (ret)
			return ret;
		ret = bpf_redirect_neigh(p.ifindex, 0, 0, 0);
		return ret == TC_ACT_REDIRECT ? ret : DROP(REASON_DROP_REDIRECT);
	}
	if (c) {
		c->expires_ns = now + FIB_CACHE_NS;
		c->saddr = saddr;
		c->daddr = daddr;
		c->tos = tos;
		c->ifindex = p.ifindex;
		__builtin_memcpy(c->smac, p.smac, 6);
		__builtin_memcpy(c->dmac, p.dmac, 6);
	}
	ret = forward_write(skb, p.smac, p.dmac, x);
	if (ret)
		return ret;
	ret = bpf_redirect(p.ifindex, 0);
	return ret == TC_ACT_REDIRECT ? ret : DROP(REASON_DROP_REDIRECT);
}

#endif
