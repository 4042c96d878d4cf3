/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* bpf_ktime_get_coarse_ns: the NAT table's and the next-hop cache's clock (5.11). */
#include "probe.h"

SEC("tc")
int probe(struct __sk_buff *skb)
{
	return bpf_ktime_get_coarse_ns() ? TC_ACT_OK : TC_ACT_SHOT;
}
