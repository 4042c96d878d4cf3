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

#include "ipv4.h"
#include "forward.h"

#ifndef AF_INET
#define AF_INET 2
#endif

static __always_inline int fib_redirect(struct __sk_buff *skb, __u32 in_ifindex, __u32 saddr, __u32 daddr,
					__u8 tos, const struct nat_xlate *x)
{
	struct bpf_fib_lookup p = {};
	long rc;
	int ret;

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
	ret = forward_write(skb, p.smac, p.dmac, x);
	if (ret)
		return ret;
	ret = bpf_redirect(p.ifindex, 0);
	return ret == TC_ACT_REDIRECT ? ret : DROP(REASON_DROP_REDIRECT);
}

#endif
