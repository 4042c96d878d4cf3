// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Attached at the tc egress of the node's bridge: what the host stack hands
 * to the bridge for its pods. bvcni's own deliveries go past it (deliver.h
 * redirects into the pod; frames bridged port to port never use the
 * bridge's own transmit), so it sees exactly what the host routed to a
 * local pod: the node's own packets (kubelet probes), a Service's after
 * kube-proxy's DNAT to a backend of this node, NodePort traffic DNAT'd to
 * one, the un-DNAT'd replies of Service flows, and what conntrack
 * reassembled. Without it those would reach the pod with no ingress policy
 * decided at all (a denied pod would only need the backend's ClusterIP).
 *
 * A source that is a local endpoint came up from a pod of this node through
 * the host stack, in practice to a ClusterIP: its egress was deferred to
 * here, where the backend is known (lib/policy.h), so it is decided first.
 * Everything else passes untouched (ARP, broadcasts, addresses without an
 * endpoint: the host's business), and nothing is counted but drops, as on
 * the uplink: the host's traffic is not ours.
 */
#include "lib/entry.h"
#include "lib/policy.h"

static __always_inline int to_pod(struct __sk_buff *skb)
{
	const struct bvcni_config *cfg;
	const struct endpoint_value *ep, *src;
	struct iphdr *ip;
	int ret;

	/* Not IPv4, malformed, or no config yet: the host's, as before this program existed. */
	ip = entry_ipv4(skb, &cfg, &ret);
	if (!ip)
		return TC_ACT_OK;
	ep = endpoint_get(ip->daddr);
	if (!ep)
		return TC_ACT_OK;
	src = endpoint_get(ip->saddr);
	if (src) {
		ret = policy_check(skb, src, DIR_EGRESS);
		if (ret)
			return ret;
	}
	return policy_check(skb, ep, DIR_INGRESS);
}

SEC("tc")
int host_to_pod(struct __sk_buff *skb)
{
	int ret = to_pod(skb);

	if (ret == TC_ACT_OK)
		return ret;
	return verdict(skb, ret, DIR_EGRESS, HOOK_TO_POD);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
