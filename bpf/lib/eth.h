/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef BVCNI_ETH_H
#define BVCNI_ETH_H

#include "common.h"

/*
 * The packet's linear part, read afresh (after a helper that may move it).
 * The empty asm keeps clang from reusing &skb->data_end computed for an
 * earlier read, kept in a spilled register: the verifier refuses loads
 * through a ctx pointer that was moved.
 */
static __always_inline void *pkt_data(struct __sk_buff *skb, void **data_end)
{
	asm volatile("" : "+r"(skb));
	*data_end = (void *)(long)skb->data_end;
	return (void *)(long)skb->data;
}

/* Bounds-checked view of an Ethernet + IPv4 header; NULL when the packet is not IPv4 or is truncated. */
static __always_inline struct iphdr *ipv4_hdr(struct __sk_buff *skb, int *ret)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;

	*ret = TC_ACT_OK;
	if ((void *)(eth + 1) > data_end)
		return 0;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	if ((void *)(ip + 1) > data_end) {
		*ret = DROP(REASON_DROP_INVALID);
		return 0;
	}
	if (ip->ihl < 5 || ip->version != 4) {
		*ret = DROP(REASON_DROP_INVALID);
		return 0;
	}
	return ip;
}

/* src then dst, as one 12-byte store at offset 0 (dst comes first on the wire). */
static __always_inline int eth_rewrite(struct __sk_buff *skb, const __u8 *src, const __u8 *dst)
{
	__u8 macs[12];

	__builtin_memcpy(macs, dst, 6);
	__builtin_memcpy(macs + 6, src, 6);
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0)
		return DROP(REASON_DROP_INVALID);
	return TC_ACT_OK;
}

#endif
