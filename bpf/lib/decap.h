/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * VXLAN receive at the uplink's ingress: a VXLAN packet for a local pod is
 * decapsulated here and handed to the pod with bpf_redirect_peer before the
 * host stack sees it. Through the VXLAN device the same packet pays, each
 * time, the outer IP receive and route lookup, the UDP socket lookup, the
 * metadata dst that collect_md mode allocates (and frees through RCU) and a
 * GRO cell round; skipping them measured 1.15-1.2x the cross-node TCP
 * throughput here.
 *
 * A packet for this node itself (a remote pod talking to the node IP) is
 * decapsulated too and handed to the VXLAN device's receive side, where the
 * host stack takes it as it would from the device (pod to node IP measured
 * 1.23x the TCP throughput of the device's whole receive path).
 *
 * Either way the inner source must belong to the sending node, its podCIDR
 * or its own IP (lib/isolation.h); a node's packet that fails this is
 * dropped here as DROP_VXLAN_SPOOFED. An inner packet for the node that is
 * itself UDP to the VXLAN port is dropped as DROP_POD_VXLAN.
 *
 * Anything else takes the VXLAN device as before (bpf_overlay's ingress,
 * which validates what it gets the same way): packets from hosts that are
 * not cluster nodes, for addresses with no endpoint, flows the host
 * translated and IP fragments (conntrack must reassemble them before it can
 * translate them back), CE-marked packets (the device
 * propagates ECN), other ports and VNIs, headers a NIC left outside the
 * linear part (rare: drivers pull them in), and whatever the helper refuses.
 * Like the device with a zero outer checksum, we do not verify the outer UDP
 * checksum: the inner packet carries its own.
 *
 * GSO: a super-packet stays one (BPF_F_ADJ_ROOM_FIXED_GSO keeps the inner
 * MSS). Its UDP_TUNNEL gso_type bit survives, which the kernel's own decap
 * clears; TCP segmentation dispatches on the headers it finds, so a pod that
 * forwards the packet still segments it as plain TCP.
 */
#ifndef BVCNI_DECAP_H
#define BVCNI_DECAP_H

#include "maps.h"
#include "ipv4.h"
#include "conntrack.h"
#include "deliver.h"
#include "vxlan.h"
#include "isolation.h"

/*
 * The inner IPv4 header of a VXLAN packet for us, or NULL when the packet is
 * not one; *outer_saddr: the sending node. Only a cluster node's packets skip
 * the host stack (vxlan_from_node): the rest meet the host's firewall on the
 * way to the VXLAN socket, as they did before this path, and bpf_overlay's
 * ingress drops them.
 */
static __always_inline struct iphdr *vxlan_inner_ipv4(struct __sk_buff *skb, const struct bvcni_config *cfg,
						      __u32 *outer_saddr)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	struct udphdr *udp = (void *)(ip + 1);
	struct vxlan_hdr_min *vx = (void *)(udp + 1);
	struct ethhdr *ieth = (void *)(vx + 1);
	struct iphdr *iip = (void *)(ieth + 1);

	if ((void *)(iip + 1) > data_end)
		return 0;
	if (ip->ihl != 5 || ip->protocol != IPPROTO_UDP || ip->daddr != cfg->node_ip || ipv4_is_fragment(ip))
		return 0;
	if (!vxlan_from_node(ip->saddr))
		return 0;
	if ((ip->tos & IP_ECN_MASK) == IP_ECN_CE)
		return 0;
	if (udp->dest != bpf_htons(cfg->vxlan_port) || !(vx->flags & VXLAN_F_VNI))
		return 0;
	if ((((__u32)vx->vni[0] << 16) | ((__u32)vx->vni[1] << 8) | vx->vni[2]) != cfg->vni)
		return 0;
	if (ieth->h_proto != bpf_htons(ETH_P_IP) || iip->ihl < 5 || iip->version != 4)
		return 0;
	*outer_saddr = ip->saddr;
	return iip;
}

/*
 * A pod of another node talking to this node: up the host stack as if the
 * VXLAN device had received it, the inner frame whole (its ingress program,
 * rp_filter and the host's firewall see the same packet on the same device),
 * without the device's outer receive path.
 */
static __always_inline int vxlan_decap_to_node(struct __sk_buff *skb, const struct bvcni_config *cfg,
					       const struct iphdr *iip)
{
	__u8 macs[12];
	int ret;

	__builtin_memcpy(macs, (const void *)iip - ETH_HLEN, sizeof(macs));
	if (vxlan_strip(skb) < 0)
		return TC_ACT_OK; /* the device still gets it right */
	if (bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0) < 0)
		return DROP(REASON_DROP_INVALID);
	ret = bpf_redirect(cfg->vxlan_ifindex, BPF_F_INGRESS);
	return ret == TC_ACT_REDIRECT ? ret : DROP(REASON_DROP_REDIRECT);
}

/* TC_ACT_OK when the packet is not ours to decapsulate, else a redirect or DROP(reason). */
static __always_inline int vxlan_decap(struct __sk_buff *skb, const struct bvcni_config *cfg)
{
	const struct endpoint_value *ep;
	struct iphdr *iip;
	__u32 node = 0;

	if (!cfg->vxlan_port)
		return TC_ACT_OK;
	iip = vxlan_inner_ipv4(skb, cfg, &node);
	if (!iip)
		return TC_ACT_OK;
#ifndef BVCNI_NO_ISOLATION
	if (!vxlan_inner_src_ok(node, iip->saddr))
		return DROP(REASON_DROP_VXLAN_SPOOFED);
#endif
	ep = endpoint_get(iip->daddr);
	if (!ep) {
		if (iip->daddr != cfg->node_ip)
			return TC_ACT_OK;
#ifndef BVCNI_NO_ISOLATION
		{
			int ret = node_vxlan_again_check(skb, cfg, iip, VXLAN_INNER_IP_OFF);

			if (ret)
				return ret;
		}
#endif
		return vxlan_decap_to_node(skb, cfg, iip);
	}
	/* Fragments too (conntrack.h): only the host can reassemble and un-translate them. */
	if (ct_host_translated_at(skb, iip, VXLAN_INNER_IP_OFF + iip->ihl * 4))
		return TC_ACT_OK;
	if (vxlan_strip(skb) < 0)
		return TC_ACT_OK; /* the device still gets it right */
	return deliver_to_pod(skb, ep, 0);
}

#endif
