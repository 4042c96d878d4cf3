// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Where the host hands packets to a pod: the tc egress of a pod's host veth,
 * or the primary side of a netkit pod's pair (what its host end transmits:
 * the node's /32 route to the pod). bvcni's own deliveries from a tc ingress
 * go past it (deliver.h: bpf_redirect_peer straight into the pod), so it
 * sees what the host stack routed or bridged to the pod: the node's own
 * packets (kubelet probes), a Service's after kube-proxy's DNAT to a backend
 * of this node, NodePort traffic DNAT'd to one, the un-DNAT'd replies of
 * Service flows, what conntrack reassembled, and frames other pods' ports
 * flood (ARP). Without it those reach the pod with no ingress policy decided
 * at all: a denied pod would only need the backend's ClusterIP. Not the
 * bridge's own egress: br_netfilter forwards a packet DNAT'd to an address
 * of the bridge's subnet from port to port ("bridged DNAT"), past the
 * bridge's transmit, but through the port's.
 *
 * A source that is a local endpoint came from a pod of this node through the
 * host stack, in practice to a ClusterIP: its egress was deferred to here,
 * where the backend is known (lib/policy.h), so it is decided first. What
 * bpf_pod delivered from a netkit pod's transmit (a bpf_redirect to this
 * host end) was decided there and meets its own conntrack entries again:
 * one lookup each way, the same verdict. Everything else passes untouched
 * (ARP, broadcasts, addresses without an endpoint, pods without policy),
 * and nothing is counted but drops, as on the uplink: that traffic is the
 * host's.
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
	/* Endpoints are podCIDR addresses: the node's and remote sources skip the lookup. */
	src = ipv4_in_prefix(ip->saddr, cfg->pod_cidr, cfg->pod_prefix) ? endpoint_get(ip->saddr) : NULL;
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
