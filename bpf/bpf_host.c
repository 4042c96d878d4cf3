// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Attached at the uplink's ingress: VXLAN packets for local pods are
 * decapsulated and delivered here (lib/decap.h says why not in the VXLAN
 * device), and replies to masqueraded flows (and ICMP errors quoting them)
 * are translated back and handed to the pod before the host stack sees them
 * (it would answer with a RST, and conntrack would pay for every packet).
 * Packets for a mapped hostPort go to their pod (lib/hostport.h).
 * Everything else is the host's and passes untouched; so does everything
 * while the config is not ready.
 */
#include "lib/entry.h"
#include "lib/nat.h"
#include "lib/deliver.h"
#include "lib/decap.h"
#include "lib/hostport.h"

static __always_inline int from_uplink(struct __sk_buff *skb)
{
	const struct bvcni_config *cfg;
	const struct endpoint_value *ep;
	struct nat_xlate x = {};
	struct iphdr *ip;
	__u32 pod_ip = 0;
	int ret;

	ip = entry_ipv4(skb, &cfg, &ret);
	if (!ip)
		return TC_ACT_OK;
	ret = vxlan_decap(skb, cfg);
	if (ret)
		return ret;
	/* Unchanged, but the verifier forgets packet pointers across a failed adjust_room. */
	ip = ipv4_hdr(skb, &ret);
	if (!ip)
		return TC_ACT_OK;
	ret = hostport_to_pod(skb, cfg, ip, 0);
	if (ret != TC_ACT_OK)
		return ret;
	ret = nat_ingress(skb, cfg, ip, &pod_ip, &x);
	if (ret || !pod_ip)
		return ret; /* a drop, or not a reply of the NAT's: the host's */
	ep = endpoint_get(pod_ip);
	if (!ep)
		return DROP(REASON_DROP_NO_ENDPOINT);
	return deliver_routed_to_pod(skb, ep, &x, 0);
}

SEC("tc")
int host_from_uplink(struct __sk_buff *skb)
{
	int ret = from_uplink(skb);

	/* The host's own traffic is not counted: it is not ours. */
	if (ret == TC_ACT_OK)
		return ret;
	return verdict(skb, ret, DIR_INGRESS, HOOK_UPLINK);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
