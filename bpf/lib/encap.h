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
 * VXLAN device skips path-MTU handling, and the outer packet would be
 * fragmented silently. Pods get MTU = uplink - 50, so this only catches
 * misconfigured pods: a non-GSO DF packet larger than the overlay MTU is
 * dropped and counted as DROP_FRAG_NEEDED (we do not synthesize ICMP).
 */
static __always_inline int encap_check_mtu(struct __sk_buff *skb, const struct bvcni_config *cfg,
					   const struct iphdr *ip)
{
	if (cfg->mtu && skb->gso_segs <= 1 && skb->len > cfg->mtu + ETH_HLEN &&
	    (ip->frag_off & bpf_htons(IP_DF)))
		return DROP(REASON_DROP_FRAG_NEEDED);
	return TC_ACT_OK;
}

#endif
