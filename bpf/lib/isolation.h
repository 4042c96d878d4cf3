/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Who may put packets onto the overlay. Two rules, one per side:
 *
 * - A pod never originates VXLAN to the cluster (pod_vxlan_check). Every
 *   node's VXLAN socket listens on all of the node's addresses and trusts
 *   what it decapsulates to come from the node that sent it, so a pod that
 *   can reach any address of any node on the VXLAN port can hand it an inner
 *   packet with a source of its choosing: anti-spoofing on the pod's veth is
 *   bypassed for every pod and node in the cluster.
 * - A node accepts VXLAN only from a cluster node, and only with an inner
 *   source that node owns: its podCIDR or its own IP (vxlan_inner_src_ok).
 *
 * The checks compile out with -DBVCNI_NO_ISOLATION, for the benchmark that
 * measures what they cost; nothing else may build without them.
 */
#ifndef BVCNI_ISOLATION_H
#define BVCNI_ISOLATION_H

#include "maps.h"
#include "ipv4.h"

/* A cluster node's underlay address: its /32 tunnel entry points at itself. */
static __always_inline int vxlan_from_node(__u32 saddr)
{
	const struct tunnel_value *tun = tunnel_get(saddr);

	return tun && (tun->flags & TUNNEL_F_NODE_IP) && tun->node_ip == saddr;
}

/*
 * Whether a node (outer source, already known to be a node) may send this
 * inner source: one LPM lookup finds the podCIDR or the node /32 that holds
 * it, and whose node it is. A pod of node C relayed by node B, a node's
 * other addresses, the Service range and anything outside the cluster all
 * fail.
 */
static __always_inline int vxlan_inner_src_ok(__u32 outer_saddr, __u32 inner_saddr)
{
	const struct tunnel_value *tun = tunnel_get(inner_saddr);

	return tun && tun->node_ip == outer_saddr;
}

/*
 * Whether the IPv4 packet whose header is ip, at l3off in the skb, is UDP to
 * port (host order): 1 or 0; DROP(REASON_DROP_INVALID) when it is the first
 * fragment (or the whole datagram) and too short to hold a UDP header, so
 * nobody can tell. Later fragments carry no ports and answer 0: without their
 * first fragment they never reassemble, and the kernel drops overlapping
 * fragments (a later one cannot rewrite the first one's ports).
 */
static __always_inline int ipv4_udp_to_port(struct __sk_buff *skb, const struct iphdr *ip, __u32 l3off, __u16 port)
{
	__u32 hlen = ip->ihl * 4;
	__u16 dport;

	if (ip->protocol != IPPROTO_UDP)
		return 0;
	if (ip->frag_off & bpf_htons(IP_OFFSET))
		return 0;
	/* tot_len, not the skb: a frame may carry padding past the datagram. */
	if (bpf_ntohs(ip->tot_len) < hlen + sizeof(struct udphdr))
		return DROP(REASON_DROP_INVALID);
	if (bpf_skb_load_bytes(skb, l3off + hlen + offsetof(struct udphdr, dest), &dport, sizeof(dport)) < 0)
		return DROP(REASON_DROP_INVALID);
	return dport == bpf_htons(port);
}

/*
 * A pod's UDP to the VXLAN port passes only when its destination is a pod:
 * a local endpoint, or an address in a remote podCIDR (a tunnel entry that is
 * not a node's /32). Everything else is dropped: this node's IP, its gateway
 * and any other address it has (the socket listens on all of them), other
 * nodes' IPs (which bpf_pod would tunnel to the node, where its socket would
 * decapsulate the pod's inner packet), Services (kube-proxy may DNAT them to
 * a node), and whatever the masquerade would reach, since any address outside
 * the cluster may be another address of a node. A pod's own VXLAN socket
 * serving other pods keeps working; a pod cannot reach UDP port 8472 outside
 * the pod network (README, Known limits).
 * TC_ACT_OK to go on, or DROP(reason).
 */
static __always_inline int pod_vxlan_check(struct __sk_buff *skb, const struct bvcni_config *cfg,
					   const struct iphdr *ip)
{
	const struct tunnel_value *tun;
	int ret;

	if (!cfg->vxlan_port)
		return TC_ACT_OK;
	ret = ipv4_udp_to_port(skb, ip, ETH_HLEN, cfg->vxlan_port);
	if (ret <= 0)
		return ret;
	if (endpoint_get(ip->daddr))
		return TC_ACT_OK;
	tun = bpf_map_lookup_elem(&BVCNI_MAP_TUNNEL, &(struct tunnel_key){ .prefixlen = 32, .addr = ip->daddr });
	if (tun && !(tun->flags & TUNNEL_F_NODE_IP))
		return TC_ACT_OK;
	return DROP(REASON_DROP_POD_VXLAN);
}

/*
 * Defense in depth on the receiving node: a decapsulated packet for the node
 * itself that is UDP to the VXLAN port again would be decapsulated a second
 * time by the node's socket, with an inner source nobody checked. No node
 * sends that; a pod that got past its own node's check would.
 * TC_ACT_OK to go on, or DROP(reason). l3off: where ip starts in the skb.
 */
static __always_inline int node_vxlan_again_check(struct __sk_buff *skb, const struct bvcni_config *cfg,
						  const struct iphdr *ip, __u32 l3off)
{
	int ret;

	if (!cfg->vxlan_port)
		return TC_ACT_OK;
	ret = ipv4_udp_to_port(skb, ip, l3off, cfg->vxlan_port);
	if (ret <= 0)
		return ret;
	return DROP(REASON_DROP_POD_VXLAN);
}

#endif
