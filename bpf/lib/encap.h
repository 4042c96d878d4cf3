/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * VXLAN transmit through the VXLAN device: layered as set key -> set key and
 * redirect. The fallback for pod and node traffic that overlay_xmit.h cannot
 * encapsulate itself.
 * Returns: TC_ACT_OK / TC_ACT_REDIRECT, or DROP(REASON_DROP_REDIRECT) when a
 * helper fails. The caller did the tunnel lookup (a miss is its decision).
 */
#ifndef BVCNI_ENCAP_H
#define BVCNI_ENCAP_H

#include "maps.h"

static __always_inline int encap_set_key(struct __sk_buff *skb, const struct bvcni_config *cfg,
					 const struct tunnel_value *tun)
{
	struct bpf_tunnel_key key = {};

	key.tunnel_id = cfg->vni;
	key.remote_ipv4 = bpf_ntohl(tun->node_ip); /* the helper wants host order */
	key.tunnel_ttl = 64;
	/* Like the kernel's VXLAN default: no outer UDP checksum (the inner packet carries its own). */
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0)
		return DROP(REASON_DROP_REDIRECT);
	return TC_ACT_OK;
}

static __always_inline int encap_and_redirect(struct __sk_buff *skb, const struct bvcni_config *cfg,
					      const struct tunnel_value *tun)
{
	int ret = encap_set_key(skb, cfg, tun);

	if (ret != TC_ACT_OK)
		return ret;
	ret = bpf_redirect(cfg->vxlan_ifindex, 0);
	if (ret != TC_ACT_REDIRECT)
		return DROP(REASON_DROP_REDIRECT);
	return ret;
}

/*
 * The overlay MTU is enforced here, not by the kernel: bpf_redirect into the
 * VXLAN device, or overlay_xmit.h's own encapsulation, skips path-MTU
 * handling. Pods have the uplink's MTU, and the overlay's only on their
 * routes to the cluster and Service CIDRs (cni/overlay-routes.ts); the tunnel
 * also carries what those routes miss (other nodes' IPs: the tunnel map holds
 * their /32s) and what a pod that changed its routes sends. For a packet
 * whose IP datagram (or, for GSO, each segment's) is larger than cfg->mtu:
 * - DF set, one segment: OVERLAY_FRAG_NEEDED, the caller answers with ICMP
 *   "fragmentation needed" (lib/icmp_frag.h) as a router would;
 * - otherwise: OVERLAY_VIA_DEVICE, through the VXLAN device, whose outer
 *   packet the stack fragments (its DF is never set: encap_set_key).
 */
enum overlay_fit {
	OVERLAY_FITS = 0,
	OVERLAY_VIA_DEVICE = 1,
	OVERLAY_FRAG_NEEDED = 2,
};

static __always_inline enum overlay_fit overlay_check_mtu(struct __sk_buff *skb, const struct bvcni_config *cfg,
							  const struct iphdr *ip)
{
	__u32 ihl = ip->ihl * 4, l4 = 0, seg;
	__u8 doff;

	if (!cfg->mtu)
		return OVERLAY_FITS;
	if (skb->gso_segs > 1) {
		if (ip->protocol == IPPROTO_TCP) {
			if (bpf_skb_load_bytes(skb, ETH_HLEN + ihl + 12, &doff, 1) < 0)
				return OVERLAY_VIA_DEVICE;
			l4 = (doff >> 4) * 4;
		} else if (ip->protocol == IPPROTO_UDP) {
			l4 = 8;
		} else {
			return OVERLAY_VIA_DEVICE;
		}
		seg = skb->gso_size + ihl + l4;
		if (seg <= cfg->mtu)
			return OVERLAY_FITS;
	} else if (skb->len <= cfg->mtu + ETH_HLEN) {
		return OVERLAY_FITS;
	}
	return (ip->frag_off & bpf_htons(IP_DF)) ? OVERLAY_FRAG_NEEDED : OVERLAY_VIA_DEVICE;
}

#endif
