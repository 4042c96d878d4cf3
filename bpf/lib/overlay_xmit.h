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
 * The headers are what the device writes for our tunnel key (lib/vxlan.h),
 * with a source port from the flow hash so the underlay spreads flows over
 * its paths. A super-packet stays one, marked as a UDP tunnel GSO packet;
 * the pod MTU already leaves room for the headers in each segment.
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

/*
 * TC_ACT_REDIRECT when sent, DROP(reason), or TC_ACT_OK when the packet,
 * unchanged, must take the device (the caller gives it its tunnel key).
 */
static __always_inline int overlay_xmit(struct __sk_buff *skb, const struct bvcni_config *cfg,
					const struct tunnel_value *tun)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *inner = data + ETH_HLEN;
	struct vxlan_encap h = {};
	struct bpf_redir_neigh nh = { .nh_family = AF_INET };
	struct fib_hop hop;
	__u32 len;
	int ret;

	if ((void *)(inner + 1) > data_end)
		return TC_ACT_OK;
	ret = fib_next_hop(skb, FIB_SLOT_OVERLAY, cfg->bridge_ifindex, cfg->node_ip, tun->node_ip, 0, &hop);
	if (ret)
		return TC_ACT_OK; /* no route to the node: the device's path may know better */
	nh.ipv4_nh = hop.nexthop;
	/* The outer length must fit: otherwise only the device's path knows what to do. */
	len = skb->len - ETH_HLEN + VXLAN_ENCAP_LEN;
	if (len > 0xffff)
		return TC_ACT_OK;

	vxlan_encap_fill(&h, eth, inner->tos, len, cfg->node_ip, tun->node_ip, bpf_get_hash_recalc(skb),
			 cfg->vxlan_port, cfg->vni);
	/* Refused, the packet is unchanged and the device can still take it. */
	if (vxlan_grow(skb) < 0)
		return TC_ACT_OK;
	ret = vxlan_encap_store(skb, &h);
	if (ret)
		return ret;
	ret = bpf_redirect_neigh(hop.ifindex, &nh, sizeof(nh), 0);
	return ret == TC_ACT_REDIRECT ? ret : DROP(REASON_DROP_REDIRECT);
}

#endif
