/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP "fragmentation needed" (type 3, code 4; RFC 1191) for a pod's DF
 * packet too big for the tunnel (lib/encap.h, overlay_check_mtu): built in
 * place from the packet itself and handed back to the pod, whose stack caches
 * the overlay's MTU for that destination and sends smaller, as after a
 * router's answer. It comes from the node's IP and no policy decides it: it
 * answers the pod's own packet, as a router's error relates to its flow.
 */
#ifndef BVCNI_ICMP_FRAG_H
#define BVCNI_ICMP_FRAG_H

#include "csum.h"
#include "deliver.h"
#include "metrics.h"

/*
 * What the error quotes: the datagram's header, options included, and its
 * first 64 bytes after it. RFC 792 asks for 8, RFC 1812 allows more; 8 would
 * cut a TCP packet short of its checksum field, which a packet the pod's
 * stack left to checksum offload (CHECKSUM_PARTIAL: every TSO one) must keep:
 * bpf_skb_change_tail refuses to cut shorter.
 */
#define ICMP_QUOTE_DATA 64
#define ICMP_QUOTE_MAX (60 + ICMP_QUOTE_DATA)

struct icmp_frag_hdr {
	struct iphdr ip;
	struct icmphdr_min icmp; /* id unused (0); seq: the next hop's MTU (RFC 1191) */
};

static __always_inline int icmp_frag_needed(struct __sk_buff *skb, const struct bvcni_config *cfg,
					    const struct endpoint_value *ep, int from_xmit, __u32 dir)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	struct icmp_frag_hdr h = {};
	__u32 qlen, pod_ip, len = skb->len, sum = 0, w;
	const __u16 *hw = (const __u16 *)&h.icmp;
	int ret;

	if ((void *)(ip + 1) > data_end)
		return DROP(REASON_DROP_INVALID);
	qlen = ip->ihl * 4 + ICMP_QUOTE_DATA;
	pod_ip = ip->saddr;
	/* Always there: the packet is larger than the overlay's MTU. */
	if (qlen < sizeof(struct iphdr) + ICMP_QUOTE_DATA || qlen > ICMP_QUOTE_MAX)
		return DROP(REASON_DROP_INVALID);
	/* The quote's share of the ICMP checksum, a word at a time (no room on the stack for a copy). */
	for (int i = 0; i < ICMP_QUOTE_MAX / 4; i++) {
		if (i * 4 >= qlen)
			break;
		if (bpf_skb_load_bytes(skb, ETH_HLEN + i * 4, &w, 4) < 0)
			return DROP(REASON_DROP_INVALID);
		sum += (w & 0xffff) + (w >> 16);
	}

	h.ip.version = 4;
	h.ip.ihl = 5;
	h.ip.ttl = 64;
	h.ip.protocol = IPPROTO_ICMP;
	h.ip.tot_len = bpf_htons(sizeof(h) + qlen);
	h.ip.saddr = cfg->node_ip;
	h.ip.daddr = pod_ip;
	h.ip.check = ipv4_csum(&h.ip);
	h.icmp.type = ICMP_DEST_UNREACH;
	h.icmp.code = ICMP_FRAG_NEEDED;
	h.icmp.seq = bpf_htons((__u16)cfg->mtu);
	sum += hw[0] + hw[2] + hw[3]; /* type and code, id, MTU (the checksum word is 0) */
	h.icmp.checksum = (__u16)~csum_fold32(sum);

	/* The packet becomes the answer: cut to the quote, room for the new headers in front of it. */
	if (bpf_skb_change_tail(skb, ETH_HLEN + qlen, 0) < 0 ||
	    bpf_skb_adjust_room(skb, sizeof(h), BPF_ADJ_ROOM_MAC, 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &h, sizeof(h), 0) < 0)
		return DROP(REASON_DROP_FRAG_NEEDED);
	ret = eth_rewrite(skb, ep->gw_mac, ep->pod_mac);
	if (ret)
		return ret;
	ret = redirect_to_pod(ep->ifindex, from_xmit);
	/* The pod's packet went no further: counted under its reason, though the verdict forwards the answer. */
	if (ret == TC_ACT_REDIRECT)
		stats_count(REASON_DROP_FRAG_NEEDED, dir, len);
	return ret;
}

#endif
