/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The last write of a packet we route past the host stack: MACs, the TTL, the
 * address and port the NAT translated and the IP checksum, edited in one copy
 * of the headers and stored with one bpf_skb_store_bytes. Field by field it
 * took six helper calls (four stores, two IP checksum updates) per packet,
 * ~30 ns each: in a stream of short connections, ~1 us per connection. The
 * IP checksum is updated here incrementally (RFC 1624); the L4 checksum stays
 * with bpf_l4_csum_replace, the only one that knows CHECKSUM_PARTIAL (the NAT
 * calls it before).
 */
#ifndef BVCNI_FORWARD_H
#define BVCNI_FORWARD_H

#include "eth.h"
#include "csum.h"

/* What the NAT leaves to forward_write. */
struct nat_xlate {
	__u32 addr;      /* network order: the new source (is_src) or destination; 0: none */
	__u16 port;      /* network order: the new value of the field at port_off */
	__u16 port_off;  /* packet offset of the port (or echo id) field; 0: none */
	__u8  is_src;
	__u8  pad[3];
};

#define FWD_L3_END (ETH_HLEN + sizeof(struct iphdr))
/* Up to the end of the ports (or the echo id) when the IP header has no options. */
#define FWD_L4_END (FWD_L3_END + 6)

/*
 * The first len bytes (FWD_L3_END or FWD_L4_END) into buf, 2 bytes past a
 * 4-byte boundary (forward_write's layout). Read straight from the linear
 * part, where the headers of nearly every packet are: a helper call costs
 * ~40 ns here (a call and return each way, with the kernel's return-stack
 * mitigations), a third of what a hostPort packet's whole translation costs.
 * bpf_skb_load_bytes for the rest.
 */
static __always_inline int fwd_load(struct __sk_buff *skb, __u8 *buf, __u32 len)
{
	void *data, *data_end;

	/*
	 * Else clang may keep &skb->data_end from an earlier read in a spilled
	 * register, and the verifier refuses loads through a moved ctx pointer.
	 */
	asm volatile("" : "+r"(skb));
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;

	if (data + len > data_end) {
		if (bpf_skb_pull_data(skb, len) < 0)
			return -1;
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		if (data + len > data_end)
			return -1;
	}
	/* 16-bit words: the packet's alignment is unknown, the stack's must be kept. */
#pragma unroll
	for (int i = 0; i < (int)(FWD_L4_END / 2); i++) {
		if (i * 2 >= len)
			break;
		((__u16 *)buf)[i] = ((const __u16 *)data)[i];
	}
	return 0;
}

/*
 * Rewrites the MACs (unless smac is NULL: bpf_redirect_neigh fills them),
 * decrements the TTL as a router does (dropping what would expire) and
 * applies x. Packet pointers are invalid afterwards.
 */
static __always_inline int forward_write(struct __sk_buff *skb, const __u8 *smac, const __u8 *dmac,
					 const struct nat_xlate *x)
{
	/* Two bytes ahead of the Ethernet header align the IP header's words: the verifier requires it on the stack. */
	struct {
		__u8 pad[2];
		__u8 eth[ETH_HLEN];
		struct iphdr ip;
		__u8 l4[FWD_L4_END - FWD_L3_END];
	} h;
	__u8 *buf = h.eth;
	struct iphdr *ip = &h.ip;
	__u16 old_word, new_word;
	__u32 port_off = x->port_off;
	int with_port = 0;

	/* A translated packet has its L4 header (the NAT read it), so 40 bytes are there. */
	if (port_off) {
		if (fwd_load(skb, buf, FWD_L4_END) < 0)
			return DROP(REASON_DROP_INVALID);
		with_port = ip->ihl == 5 && port_off >= FWD_L3_END && port_off <= FWD_L4_END - 2;
	} else if (fwd_load(skb, buf, FWD_L3_END) < 0) {
		return DROP(REASON_DROP_INVALID);
	}

	if (ip->ttl <= 1)
		return DROP(REASON_DROP_TTL);
	/* ttl and protocol share one 16-bit checksum word. */
	__builtin_memcpy(&old_word, &ip->ttl, 2);
	ip->ttl -= 1;
	__builtin_memcpy(&new_word, &ip->ttl, 2);
	ip->check = csum_replace2(ip->check, old_word, new_word);
	if (x->addr) {
		if (x->is_src) {
			ip->check = csum_replace4(ip->check, ip->saddr, x->addr);
			ip->saddr = x->addr;
		} else {
			ip->check = csum_replace4(ip->check, ip->daddr, x->addr);
			ip->daddr = x->addr;
		}
	}
	if (smac) {
		__builtin_memcpy(buf, dmac, 6);
		__builtin_memcpy(buf + 6, smac, 6);
	}
	if (with_port) {
		/* Constant offsets: the port is one of the three 16-bit words past the IP header. */
		if (port_off == FWD_L3_END)
			__builtin_memcpy(h.l4, &x->port, 2);
		else if (port_off == FWD_L3_END + 2)
			__builtin_memcpy(h.l4 + 2, &x->port, 2);
		else
			__builtin_memcpy(h.l4 + 4, &x->port, 2);
		if (bpf_skb_store_bytes(skb, 0, buf, FWD_L4_END, 0) < 0)
			return DROP(REASON_DROP_NAT_FAILED);
		return TC_ACT_OK;
	}
	if (port_off && bpf_skb_store_bytes(skb, port_off, &x->port, 2, 0) < 0)
		return DROP(REASON_DROP_NAT_FAILED);
	if (bpf_skb_store_bytes(skb, 0, buf, FWD_L3_END, 0) < 0)
		return DROP(REASON_DROP_NAT_FAILED);
	return TC_ACT_OK;
}

#endif
