/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Layer 2 isolation of what a pod emits, checked at the tc ingress of its
 * host-side veth (bpf_pod).
 *
 * The rules:
 *  - only IPv4 and ARP pass, untagged: IPv6, RARP, 802.3 length frames (STP,
 *    LLC), in-band VLAN tags and tags carried out of band in the skb are
 *    DROP_ETHERTYPE (until the cluster is dual-stack);
 *  - the Ethernet source is the pod's own MAC (pod_mac of the endpoint the
 *    frame's IPv4 source, or its ARP sender, names; that endpoint's ifindex
 *    is this veth): else DROP_SPOOFED_MAC;
 *  - an ARP's sender is the pod itself: sender IP an endpoint on this veth,
 *    sender MAC its pod_mac: else DROP_ARP_SPOOFED. An ARP that is not
 *    Ethernet/IPv4 with 6- and 4-byte addresses, or is neither a request
 *    nor a reply, is DROP_INVALID.
 *
 * Why this closes every way for a pod to change where the node, the gateway
 * or another pod sends traffic meant for someone else: that is decided by
 * three kinds of state, and each learns only from frames a pod emits, all of
 * which cross this hook before the bridge, the node or any other pod sees
 * them.
 *  - Neighbour caches (the node's, and every pod's for the gateway and its
 *    neighbours). Linux learns a neighbour only from an ARP's sender fields
 *    (requests, replies and gratuitous ARP alike: never from the target
 *    fields, never from IPv4 packets). A pod's ARP names only itself as
 *    sender, so every (IP, MAC) pair any cache learns from a pod is that
 *    pod's own. An ARP probe (sender 0.0.0.0, RFC 5227) teaches nothing;
 *    it is judged by its target, which must then be the pod's own address.
 *  - The bridge's FDB. It learns from Ethernet sources; a pod's frames carry
 *    only its own MAC. The plugin also makes the port's entry for the pod's
 *    MAC static and turns learning off on the port, so the FDB does not
 *    depend on this program alone (and nothing ages out).
 *  - Unknown-unicast flooding. With a learned entry aged out, the bridge
 *    would flood the node's frames for a pod to every port, where any pod
 *    could read them passively. The plugin turns unicast flooding off on
 *    each pod's port: with the static entry, a pod's MAC is always known,
 *    and frames for unknown MACs reach no pod. Broadcast (ARP requests
 *    between same-node pods) still floods.
 * IPv4 itself is delivered by the endpoint map, never by a MAC a pod chose,
 * and IPv6 (link-local neighbour discovery and router advertisements, which
 * would need all of the above again) does not leave the pod at all. The one
 * IPv4 message that changes routing, an ICMP redirect, is honoured only from
 * the gateway the receiver already uses for that destination: a pod is
 * nobody's gateway (the node reaches pods on-link, pods reach each other
 * on-link), and it cannot send from the gateway's address (DROP_SPOOFED).
 *
 * Compiled out with -DBVCNI_NO_ISOLATION (the benchmark measures its cost):
 * then only the IPv4 source check of bpf_pod remains.
 */
#ifndef BVCNI_L2_H
#define BVCNI_L2_H

#include "common.h"
#include "maps.h"

#define ARPHRD_ETHER 1
#define ARPOP_REQUEST 1
#define ARPOP_REPLY 2

/* An Ethernet/IPv4 ARP body (<linux/if_arp.h> leaves the addresses out). */
struct arp_eth_ipv4 {
	__be16 ar_hrd;
	__be16 ar_pro;
	__u8   ar_hln;
	__u8   ar_pln;
	__be16 ar_op;
	__u8   ar_sha[6];
	__u8   ar_sip[4];
	__u8   ar_tha[6];
	__u8   ar_tip[4];
} __attribute__((packed));

/* Both are 2-byte aligned: an Ethernet address in a frame or in a map value. */
static __always_inline int l2_mac_eq(const __u8 *a, const __u8 *b)
{
	const __u16 *x = (const __u16 *)a, *y = (const __u16 *)b;

	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2])) == 0;
}

#ifndef BVCNI_NO_ISOLATION

static __always_inline int l2_arp_from_pod(struct __sk_buff *skb, struct ethhdr *eth, void *data_end)
{
	struct arp_eth_ipv4 *arp = (void *)(eth + 1);
	const struct endpoint_value *ep;
	__u32 sip, who;

	if ((void *)(arp + 1) > data_end)
		return DROP(REASON_DROP_INVALID);
	if (arp->ar_hrd != bpf_htons(ARPHRD_ETHER) || arp->ar_pro != bpf_htons(ETH_P_IP) ||
	    arp->ar_hln != 6 || arp->ar_pln != 4)
		return DROP(REASON_DROP_INVALID);
	/* RARP's and InARP's opcodes in an ARP frame: nothing a pod needs, nothing the kernel answers. */
	if (arp->ar_op != bpf_htons(ARPOP_REQUEST) && arp->ar_op != bpf_htons(ARPOP_REPLY))
		return DROP(REASON_DROP_INVALID);

	__builtin_memcpy(&sip, arp->ar_sip, 4);
	who = sip;
	if (!sip)
		__builtin_memcpy(&who, arp->ar_tip, 4);
	ep = endpoint_get(who);
	if (!ep || ep->ifindex != skb->ifindex)
		return DROP(REASON_DROP_ARP_SPOOFED);
	if (!l2_mac_eq(eth->h_source, ep->pod_mac))
		return DROP(REASON_DROP_SPOOFED_MAC);
	if (!l2_mac_eq(arp->ar_sha, ep->pod_mac))
		return DROP(REASON_DROP_ARP_SPOOFED);
	return TC_ACT_OK;
}

/*
 * First check on every frame from a pod: TC_ACT_OK for an IPv4 frame (its
 * source MAC is checked by l2_src_mac once its endpoint is known) and for an
 * ARP that passed (the caller, finding no IPv4 header, lets it go), else a
 * drop.
 */
static __always_inline int l2_from_pod(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return DROP(REASON_DROP_INVALID);
	/*
	 * A tag the pod's VLAN device left out of band (veths offload it), or
	 * one the receive path moved there: the Ethernet type then names the
	 * inner protocol, and the bridge would forward the tag along.
	 */
	if (skb->vlan_present)
		return DROP(REASON_DROP_ETHERTYPE);
	proto = eth->h_proto;
	/* skb->protocol is what the stack (and the bridge's netfilter) will believe: it must agree. */
	if (proto != skb->protocol)
		return DROP(REASON_DROP_ETHERTYPE);
	if (proto == bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (proto == bpf_htons(ETH_P_ARP))
		return l2_arp_from_pod(skb, eth, data_end);
	return DROP(REASON_DROP_ETHERTYPE);
}

/* An IPv4 frame whose source IP is the endpoint ep on this veth: its source MAC must be ep's. */
static __always_inline int l2_src_mac(struct __sk_buff *skb, const struct endpoint_value *ep)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return DROP(REASON_DROP_INVALID);
	if (!l2_mac_eq(eth->h_source, ep->pod_mac))
		return DROP(REASON_DROP_SPOOFED_MAC);
	return TC_ACT_OK;
}

#else /* BVCNI_NO_ISOLATION: as before, ARP and the rest pass to the bridge */

/* The caller, finding no IPv4 header, lets the rest go. */
static __always_inline int l2_from_pod(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

static __always_inline int l2_src_mac(struct __sk_buff *skb, const struct endpoint_value *ep)
{
	return TC_ACT_OK;
}

#endif /* BVCNI_NO_ISOLATION */

#endif
