/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * VXLAN transmit without the VXLAN device: the program writes the outer
 * headers itself (bpf_skb_adjust_room) and hands the packet to the next hop
 * towards the other node with bpf_redirect_neigh. Through the device each
 * packet paid its tc egress hook, the route lookup that collect_md metadata
 * forces per packet (TUNNEL_NOCACHE), the UDP tunnel transmit path and the
 * host's OUTPUT and POSTROUTING hooks (so, like the receive side in decap.h,
 * the host firewall no longer sees these packets).
 *
 * The headers are what the device writes for our tunnel key: DF clear, TTL
 * 64, DSCP 0 and the inner packet's ECN (CE as ECT(0)), no outer UDP
 * checksum, a source port from the flow hash so the underlay spreads flows
 * over its paths. A super-packet stays one: the ENCAP flags mark it as a UDP
 * tunnel GSO packet with inner headers, so a NIC (or the kernel) segments it
 * correctly; FIXED_GSO keeps the inner MSS, which the pod MTU already leaves
 * room for.
 *
 * The next hop's MAC is the neighbour table's business, not ours: the
 * kernel's neighbour output fills it in, resolves it when missing and
 * probes it again when it goes stale, as on the device's path; a MAC taken
 * from bpf_fib_lookup and written here would never be re-confirmed by the
 * packets that use it. Measured as fast as writing the MAC ourselves. The
 * device remains the path for what this one cannot do: no route to the
 * node, and packets the helper refuses (already encapsulated, GSO types it
 * cannot extend).
 */
#ifndef BVCNI_OVERLAY_XMIT_H
#define BVCNI_OVERLAY_XMIT_H

#include "maps.h"
#include "encap.h"
#include "fib.h"
#include "vxlan.h"
#include "csum.h"

/* RFC 7348: source ports from the dynamic range. */
#define VXLAN_SPORT_MIN 49152
#define VXLAN_SPORT_SPAN 16384

#define OVERLAY_ADJ_FLAGS (BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | \
			   BPF_F_ADJ_ROOM_ENCAP_L4_UDP | BPF_F_ADJ_ROOM_ENCAP_L2_ETH | \
			   BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN))

/* overlay_xmit's answer when the packet, unchanged, must take the device (with its tunnel key). */
#define OVERLAY_VIA_DEVICE 100

/* A redirect, DROP(reason), or OVERLAY_VIA_DEVICE. */
static __always_inline int overlay_xmit(struct __sk_buff *skb, const struct bvcni_config *cfg,
					const struct tunnel_value *tun)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *inner = data + ETH_HLEN;
	/* Two bytes ahead of the Ethernet header align the IP header's words: the verifier requires it on the stack. */
	struct {
		__u8 pad[2];
		struct ethhdr eth;
		struct iphdr ip;
		struct udphdr udp;
		struct vxlan_hdr_min vx;
		struct ethhdr inner_eth;
	} h = {};
	struct bpf_redir_neigh nh = { .nh_family = AF_INET };
	struct fib_hop hop;
	__u32 len, hash;
	__u8 ecn;
	int ret;

	if ((void *)(inner + 1) > data_end)
		return OVERLAY_VIA_DEVICE;
	ret = fib_next_hop(skb, FIB_SLOT_OVERLAY, cfg->bridge_ifindex, cfg->node_ip, tun->node_ip, 0, &hop);
	if (IS_DROP(ret))
		return OVERLAY_VIA_DEVICE;
	nh.ipv4_nh = hop.nexthop;
	/* The outer length must fit: otherwise only the device's path knows what to do. */
	len = skb->len - ETH_HLEN + VXLAN_ENCAP_LEN;
	if (len > 0xffff)
		return OVERLAY_VIA_DEVICE;

	__builtin_memcpy(&h.inner_eth, eth, ETH_HLEN);
	ecn = inner->tos & IP_ECN_MASK;
	hash = bpf_get_hash_recalc(skb);

	h.eth.h_proto = bpf_htons(ETH_P_IP);
	h.ip.version = 4;
	h.ip.ihl = 5;
	h.ip.tos = ecn == IP_ECN_CE ? IP_ECN_ECT0 : ecn;
	h.ip.tot_len = bpf_htons(len);
	h.ip.id = (__u16)bpf_get_prandom_u32();
	h.ip.ttl = 64;
	h.ip.protocol = IPPROTO_UDP;
	h.ip.saddr = cfg->node_ip;
	h.ip.daddr = tun->node_ip;
	h.ip.check = ipv4_csum(&h.ip);
	h.udp.source = bpf_htons(VXLAN_SPORT_MIN + (__u16)(((__u64)hash * VXLAN_SPORT_SPAN) >> 32));
	h.udp.dest = bpf_htons(cfg->vxlan_port);
	h.udp.len = bpf_htons(len - sizeof(struct iphdr));
	h.vx.flags = VXLAN_F_VNI;
	h.vx.vni[0] = cfg->vni >> 16;
	h.vx.vni[1] = cfg->vni >> 8;
	h.vx.vni[2] = cfg->vni;

	/* On failure the packet is unchanged and the device can still take it. */
	if (bpf_skb_adjust_room(skb, VXLAN_ENCAP_LEN, BPF_ADJ_ROOM_MAC, OVERLAY_ADJ_FLAGS) < 0)
		return OVERLAY_VIA_DEVICE;
	if (bpf_skb_store_bytes(skb, 0, &h.eth, ETH_HLEN + VXLAN_ENCAP_LEN, 0) < 0)
		return DROP(REASON_DROP_REDIRECT);
	ret = bpf_redirect_neigh(hop.ifindex, &nh, sizeof(nh), 0);
	return ret == TC_ACT_REDIRECT ? ret : DROP(REASON_DROP_REDIRECT);
}

#endif
