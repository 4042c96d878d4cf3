/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The last write of a packet we route past the host stack: MACs, the TTL, the
 * address and port the NAT translated and the IP checksum, edited in place
 * through direct packet access. Field by field through helpers it took six
 * calls (four stores, two IP checksum updates) per packet; one copy of the
 * headers loaded and stored back took two; in place it takes none: a helper
 * call costs ~40 ns here (a call and a return each way, behind the kernel's
 * return-stack mitigations), about a tenth of a hostPort packet's whole
 * translation. The IP checksum is updated here incrementally (RFC 1624); the
 * L4 checksum stays with bpf_l4_csum_replace, the only one that knows
 * CHECKSUM_PARTIAL (the NAT calls it before). Direct writes make the verifier
 * give the program its unclone prologue: a cloned skb's header is made
 * private before the program runs (bpf_skb_store_bytes did it per call, for
 * the packets it wrote). At the tc hooks skbs are cloned mostly while a
 * packet capture runs on the device; a TCP sender's clones (the pod's own
 * packets) leave their headers writable and are not copied.
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
 * The first len bytes in the linear part, where the headers of nearly every
 * packet already are (bpf_skb_pull_data for the rest). < 0: the packet is
 * shorter.
 */
static __always_inline int fwd_linear(struct __sk_buff *skb, __u32 len)
{
	void *data_end, *data = pkt_data(skb, &data_end);

	if (data + len <= data_end)
		return 0;
	return bpf_skb_pull_data(skb, len);
}

/*
 * Rewrites the MACs (unless smac is NULL: bpf_redirect_neigh fills them),
 * decrements the TTL as a router does (dropping what would expire) and
 * applies x. Packet pointers are invalid afterwards.
 */
static __always_inline int forward_write(struct __sk_buff *skb, const __u8 *smac, const __u8 *dmac,
					 const struct nat_xlate *x)
{
	__u32 port_off = x->port_off;
	void *data, *data_end;
	struct iphdr *ip;
	__u16 old_word, new_word;

	/* A translated packet has its L4 header (the NAT read it), so 40 bytes are there. */
	if (fwd_linear(skb, port_off ? FWD_L4_END : FWD_L3_END) < 0)
		return DROP(REASON_DROP_INVALID);
	data = pkt_data(skb, &data_end);
	ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > data_end)
		return DROP(REASON_DROP_INVALID);

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
		__builtin_memcpy(data, dmac, 6);
		__builtin_memcpy(data + 6, smac, 6);
	}
	if (!port_off)
		return TC_ACT_OK;
	if (ip->ihl == 5 && port_off >= FWD_L3_END && port_off <= FWD_L4_END - 2) {
		/* Constant offsets: the port is one of the three 16-bit words past the IP header. */
		__u8 *l4 = (__u8 *)(ip + 1);

		if ((void *)(l4 + 6) > data_end)
			return DROP(REASON_DROP_INVALID);
		if (port_off == FWD_L3_END)
			__builtin_memcpy(l4, &x->port, 2);
		else if (port_off == FWD_L3_END + 2)
			__builtin_memcpy(l4 + 2, &x->port, 2);
		else
			__builtin_memcpy(l4 + 4, &x->port, 2);
		return TC_ACT_OK;
	}
	if (bpf_skb_store_bytes(skb, port_off, &x->port, 2, 0) < 0)
		return DROP(REASON_DROP_NAT_FAILED);
	return TC_ACT_OK;
}

#endif
