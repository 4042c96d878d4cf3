/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Delivery to a local pod: rewrite the MACs as the pod expects them (from its
 * gateway, to itself) and hand the packet straight to the pod side of its
 * veth with bpf_redirect_peer, skipping the host veth's backlog queue: the
 * fastest delivery measured here. bpf_redirect_peer is valid only from a tc
 * ingress hook (the target may be a veth or a netkit primary: both name their
 * peer); redirect_to_pod says what a netkit pair's transmit path does instead.
 */
#ifndef BVCNI_DELIVER_H
#define BVCNI_DELIVER_H

#include "eth.h"
#include "forward.h"
#include "policy.h"

/*
 * The hand-over itself. From a netkit pod's pair (bpf_pod runs in the pair's
 * transmit path, where the kernel refuses bpf_redirect_peer: it allows it only
 * at a tc ingress), bpf_redirect to the transmit side of the target's host end
 * instead, which hands it to the pod's interface as directly: a netkit primary
 * (no program runs there) or a veth. The tc ingress callers pass a constant 0,
 * so the branch folds away in them.
 */
static __always_inline int redirect_to_pod(__u32 ifindex, int from_xmit)
{
	long ret = from_xmit ? bpf_redirect(ifindex, 0) : bpf_redirect_peer(ifindex, 0);

	return ret == TC_ACT_REDIRECT ? TC_ACT_REDIRECT : DROP(REASON_DROP_REDIRECT);
}

/*
 * Every delivery to a local pod is where its ingress policy is decided
 * (lib/policy.h): whichever path the packet took, as the pod will see it.
 */
static __always_inline int deliver_to_pod(struct __sk_buff *skb, const struct endpoint_value *ep, int from_xmit)
{
	__u32 ifindex = ep->ifindex;
	int ret = policy_check(skb, ep, DIR_INGRESS);

	if (ret)
		return ret;
	ret = eth_rewrite(skb, ep->gw_mac, ep->pod_mac);
	if (ret)
		return ret;
	return redirect_to_pod(ifindex, from_xmit);
}

/* The same for a packet routed to the pod: TTL decremented, and what the NAT translated (x) written. */
static __always_inline int deliver_routed_to_pod(struct __sk_buff *skb, const struct endpoint_value *ep,
						 const struct nat_xlate *x, int from_xmit)
{
	__u32 ifindex = ep->ifindex;
	int ret = forward_write(skb, ep->gw_mac, ep->pod_mac, x);

	if (ret)
		return ret;
	/* After the translation: the pod's view (a hostPort client's real address, a masqueraded flow's reply). */
	ret = policy_check(skb, ep, DIR_INGRESS);
	if (ret)
		return ret;
	return redirect_to_pod(ifindex, from_xmit);
}

#endif
