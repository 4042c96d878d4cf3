/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The older tc helpers the programs rely on (bpf_fib_lookup is the newest, 4.18); also the program the attach probe attaches. */
#include "probe.h"

SEC("tc")
int probe(struct __sk_buff *skb)
{
	struct bpf_fib_lookup fib = { .family = AF_INET, .ifindex = skb->ifindex };
	struct bpf_tunnel_key key = {};
	__u32 hash = bpf_get_hash_recalc(skb) ^ bpf_get_prandom_u32();

	if (bpf_fib_lookup(skb, &fib, sizeof(fib), 0) < 0)
		return TC_ACT_OK;
	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) == 0)
		bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX);
	if (hash == 1)
		bpf_skb_change_type(skb, PACKET_HOST);
	return TC_ACT_OK;
}
