/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The VXLAN header, and the one place encapsulation headers are built, pushed and stripped (both directions). */
#ifndef BVCNI_VXLAN_H
#define BVCNI_VXLAN_H

#include "common.h"
#include "csum.h"

struct vxlan_hdr_min {
	__u8 flags;             /* 0x08: the VNI is valid */
	__u8 reserved1[3];
	__u8 vni[3];
	__u8 reserved2;
};
#define VXLAN_F_VNI 0x08

/* Outer IPv4 (no options) + UDP + VXLAN + inner Ethernet: what encapsulation adds. */
#define VXLAN_ENCAP_LEN (sizeof(struct iphdr) + sizeof(struct udphdr) + sizeof(struct vxlan_hdr_min) + ETH_HLEN)
#define VXLAN_INNER_IP_OFF (ETH_HLEN + VXLAN_ENCAP_LEN)

/* ECN bits of the IP TOS byte, which encapsulation carries across as the kernel's tunnels do. */
#define IP_ECN_MASK 0x3
#define IP_ECN_CE   0x3
#define IP_ECN_ECT0 0x2

/* RFC 7348: outer source ports from the dynamic range, spread by the inner flow's hash. */
#define VXLAN_SPORT_MIN 49152
#define VXLAN_SPORT_SPAN 16384

/* A UDP tunnel GSO packet with inner headers (so a NIC or the kernel segments it right); FIXED_GSO keeps the inner MSS. */
#define VXLAN_ADJ_ROOM_FLAGS (BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | \
			      BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH | \
			      BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN))

/*
 * What encapsulation writes in front of the inner IP header, built on the
 * stack and stored with one write. Two bytes ahead of the Ethernet header
 * align the IP header's words, as the verifier requires on the stack.
 */
struct vxlan_encap {
	__u8 pad[2];
	struct ethhdr eth;
	struct iphdr ip;
	struct udphdr udp;
	struct vxlan_hdr_min vx;
	struct ethhdr inner_eth;
};

/*
 * The headers the kernel's VXLAN device writes for a collect_md tunnel key of
 * ours: DF clear, TTL 64, DSCP 0 and the inner ECN (CE as ECT(0)), a random
 * IP ID, no UDP checksum. ip_len: the outer IPv4 total length.
 */
static __always_inline void vxlan_encap_fill(struct vxlan_encap *h, const struct ethhdr *inner_eth, __u8 inner_tos,
					     __u32 ip_len, __be32 saddr, __be32 daddr, __u32 flow_hash,
					     __u16 dport, __u32 vni)
{
	__u8 ecn = inner_tos & IP_ECN_MASK;

	__builtin_memcpy(&h->inner_eth, inner_eth, ETH_HLEN);
	h->eth.h_proto = bpf_htons(ETH_P_IP);
	h->ip.version = 4;
	h->ip.ihl = 5;
	h->ip.tos = ecn == IP_ECN_CE ? IP_ECN_ECT0 : ecn;
	h->ip.tot_len = bpf_htons(ip_len);
	h->ip.id = (__u16)bpf_get_prandom_u32();
	h->ip.ttl = 64;
	h->ip.protocol = IPPROTO_UDP;
	h->ip.saddr = saddr;
	h->ip.daddr = daddr;
	h->ip.check = ipv4_csum(&h->ip);
	h->udp.source = bpf_htons(VXLAN_SPORT_MIN + (__u16)(((__u64)flow_hash * VXLAN_SPORT_SPAN) >> 32));
	h->udp.dest = bpf_htons(dport);
	h->udp.len = bpf_htons(ip_len - sizeof(struct iphdr));
	h->vx.flags = VXLAN_F_VNI;
	h->vx.vni[0] = vni >> 16;
	h->vx.vni[1] = vni >> 8;
	h->vx.vni[2] = vni;
}

/* Makes room for the headers in front of the packet's inner IP header; on failure the packet is unchanged. */
static __always_inline long vxlan_grow(struct __sk_buff *skb)
{
	return bpf_skb_adjust_room(skb, VXLAN_ENCAP_LEN, BPF_ADJ_ROOM_MAC, VXLAN_ADJ_ROOM_FLAGS);
}

/* Writes the headers into the room vxlan_grow made: TC_ACT_OK or DROP(REASON_DROP_REDIRECT). */
static __always_inline int vxlan_encap_store(struct __sk_buff *skb, const struct vxlan_encap *h)
{
	if (bpf_skb_store_bytes(skb, 0, &h->eth, ETH_HLEN + VXLAN_ENCAP_LEN, 0) < 0)
		return DROP(REASON_DROP_REDIRECT);
	return TC_ACT_OK;
}

/* Both, for a caller with no other way out: TC_ACT_OK or DROP(REASON_DROP_REDIRECT). */
static __always_inline int vxlan_encap_push(struct __sk_buff *skb, const struct vxlan_encap *h)
{
	if (vxlan_grow(skb) < 0)
		return DROP(REASON_DROP_REDIRECT);
	return vxlan_encap_store(skb, h);
}

/* Removes the outer headers past the outer Ethernet header; on failure the packet is unchanged. */
static __always_inline long vxlan_strip(struct __sk_buff *skb)
{
	return bpf_skb_adjust_room(skb, -(__s32)VXLAN_ENCAP_LEN, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO);
}

#endif
