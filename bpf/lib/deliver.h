/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Delivery to a local pod: rewrite the MACs as the pod expects them (from its
 * gateway, to itself) and hand the packet straight to the pod side of its
 * veth with bpf_redirect_peer, skipping the host veth's backlog queue: the
 * fastest delivery measured here. Only valid from a tc ingress hook (the
 * target may be a veth or a netkit primary: both name their peer).
 */
#ifndef BVCNI_DELIVER_H
#define BVCNI_DELIVER_H

#include "eth.h"
#include "forward.h"

static __always_inline int deliver_to_pod(struct __sk_buff *skb, const struct endpoint_value *ep)
{
	__u32 ifindex = ep->ifindex;
	int ret = eth_rewrite(skb, ep->gw_mac, ep->pod_mac);

	if (ret)
		return ret;
	ret = bpf_redirect_peer(ifindex, 0);
	return ret == TC_ACT_REDIRECT ? ret : DROP(REASON_DROP_REDIRECT);
}

/*
 * The same from bpf_pod on a netkit pod's pair: a netkit program runs in the
 * pair's transmit path, where bpf_redirect_peer is refused (the kernel allows
 * it only at a tc ingress). Redirected to the transmit side of the target's
 * host end instead, which hands it to the pod's interface as directly: a
 * netkit primary (no program runs there) or a veth.
 */
static __always_inline int deliver_to_pod_from_xmit(struct __sk_buff *skb, const struct endpoint_value *ep)
{
	__u32 ifindex = ep->ifindex;
	int ret = eth_rewrite(skb, ep->gw_mac, ep->pod_mac);

	if (ret)
		return ret;
	ret = bpf_redirect(ifindex, 0);
	return ret == TC_ACT_REDIRECT ? ret : DROP(REASON_DROP_REDIRECT);
}

/* The same for a packet routed to the pod: TTL decremented, and what the NAT translated (x) written. */
static __always_inline int deliver_routed_to_pod(struct __sk_buff *skb, const struct endpoint_value *ep,
						 const struct nat_xlate *x)
{
	__u32 ifindex = ep->ifindex;
	int ret = forward_write(skb, ep->gw_mac, ep->pod_mac, x);

	if (ret)
		return ret;
	ret = bpf_redirect_peer(ifindex, 0);
	return ret == TC_ACT_REDIRECT ? ret : DROP(REASON_DROP_REDIRECT);
}

/* deliver_routed_to_pod from bpf_pod on a netkit pod's pair (deliver_to_pod_from_xmit says why). */
static __always_inline int deliver_routed_to_pod_from_xmit(struct __sk_buff *skb, const struct endpoint_value *ep,
							   const struct nat_xlate *x)
{
	__u32 ifindex = ep->ifindex;
	int ret = forward_write(skb, ep->gw_mac, ep->pod_mac, x);

	if (ret)
		return ret;
	ret = bpf_redirect(ifindex, 0);
	return ret == TC_ACT_REDIRECT ? ret : DROP(REASON_DROP_REDIRECT);
}

#endif
