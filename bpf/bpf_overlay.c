// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The VXLAN device (external / collect_md mode), both directions.
 *
 * ingress: decapsulated packets. Their inner destination MAC is the sending
 * node's bridge, so without this program the kernel drops them as
 * PACKET_OTHERHOST. Pods get them through bpf_redirect_peer; packets for this
 * node's own IP (a remote pod talking to this node) go up the host stack.
 * Most packets for pods never come here: bpf_host decapsulates them at the
 * uplink (lib/decap.h). This path serves what that one leaves to the device,
 * and checks it as that one does (overlay_rx_check): VXLAN from a host that
 * is not a cluster node, or from a node with an inner source it does not
 * own or another VNI, is dropped here.
 *
 * egress: node-originated traffic to remote pods. The node routes the
 * cluster CIDR to this device (one route, NOARP device, no neighbour or FDB
 * entries); here the same LPM lookup as bpf_pod picks the remote node, and
 * the packet is encapsulated and sent to the uplink as bpf_pod's are
 * (lib/overlay_xmit.h), or given its tunnel key for the device when that
 * cannot be done. The source stays the node IP, so remote pods see the real
 * address. Packets bpf_pod falls back to the device for already carry their
 * tunnel key and pass untouched.
 */
#include "lib/entry.h"
#include "lib/overlay_xmit.h"
#include "lib/deliver.h"
#include "lib/conntrack.h"
#include "lib/isolation.h"
#include "lib/hostport.h"

#ifndef BVCNI_NO_ISOLATION
/*
 * Who handed us this packet. The device's UDP socket, in collect_md mode,
 * attaches the outer header's tunnel info to every packet it decapsulates
 * (vxlan_rcv drops the packet when it cannot), so a packet with tunnel info
 * came off the wire, through the host stack, from anyone: it is accepted only
 * from a cluster node and with an inner source that node owns. A packet
 * without tunnel info did not come from the socket. The only other way onto
 * this device's receive side is a redirect to its ingress, which takes
 * CAP_NET_ADMIN or CAP_BPF in the node's namespace (a tc or BPF program):
 * here that is bpf_host's vxlan_decap_to_node, which validated the packet
 * the same way before stripping its outer headers (and the tunnel info with
 * them). Pods have neither capability in this namespace. The device's
 * transmit side is no way round: what it sends carries a tunnel key (set by
 * bpf_pod or by our egress program, for a remote node), and with a tunnel key
 * the device encapsulates even for a local destination, which then comes back
 * through the socket with its tunnel info (tried on kernel 6.18: a route with
 * `encap ip dst <own address>` showed the UDP datagrams at the host's input
 * hook); only packets without one are short-cut to a local receive side.
 * Non-IPv4 frames are refused either way: no node sends any. Malformed IPv4
 * is left to entry_ipv4, which drops it as DROP_INVALID.
 * TC_ACT_OK to go on, or DROP(reason).
 */
#define VNI_NONE 0xffffffffU /* no tunnel info: not from the device's socket (VNIs are 24 bits) */

static __always_inline int overlay_rx_check(struct __sk_buff *skb, __u32 *vni)
{
	struct bpf_tunnel_key key;
	struct iphdr *ip;
	__u32 node;
	int ret;

	ip = ipv4_hdr(skb, &ret);
	if (ret)
		return TC_ACT_OK;
	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0) {
		/*
		 * In collect_md mode the device also listens on IPv6 (a pod could
		 * reach it at the bridge's link-local address): the IPv4 question
		 * fails for that tunnel info, which must not pass for none at all.
		 * No node speaks VXLAN over IPv6.
		 */
		if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), BPF_F_TUNINFO_IPV6) == 0)
			return DROP(REASON_DROP_VXLAN_NOT_NODE);
		return ip ? TC_ACT_OK : DROP(REASON_DROP_ETHERTYPE);
	}
	if (!ip)
		return DROP(REASON_DROP_ETHERTYPE);
	node = bpf_htonl(key.remote_ipv4); /* the helper gives host order */
	if (!vxlan_from_node(node))
		return DROP(REASON_DROP_VXLAN_NOT_NODE);
	if (!vxlan_inner_src_ok(node, ip->saddr))
		return DROP(REASON_DROP_VXLAN_SPOOFED);
	*vni = key.tunnel_id;
	return TC_ACT_OK;
}
#endif

static __always_inline int from_overlay(struct __sk_buff *skb)
{
	const struct bvcni_config *cfg;
	const struct endpoint_value *ep;
	struct iphdr *ip;
	__u32 daddr;
	int ret;

#ifndef BVCNI_NO_ISOLATION
	__u32 vni = VNI_NONE;

	ret = overlay_rx_check(skb, &vni);
	if (ret)
		return ret;
#endif
	ip = entry_ipv4(skb, &cfg, &ret);
	if (!ip)
		return ret;
	daddr = ip->daddr;
#ifndef BVCNI_NO_ISOLATION
	/*
	 * The device in collect_md mode takes any VNI, where bpf_host's decapsulation
	 * takes only cfg->vni: a node set up with another --vni is refused either
	 * way, and said so (after the checks that name a stranger or a forger).
	 */
	if (vni != VNI_NONE && vni != cfg->vni)
		return DROP(REASON_DROP_VXLAN_VNI);
	if (daddr == cfg->node_ip) {
		ret = node_vxlan_again_check(skb, cfg, ip, ETH_HLEN);
		if (ret)
			return ret;
	}
#endif
	/* A pod of another node reaching one of this node's hostPorts. */
	ret = hostport_to_pod(skb, cfg, ip, 0);
	if (ret != TC_ACT_OK)
		return ret;
	ep = endpoint_get(daddr);
	/*
	 * For this node, or a reply in a flow the host translated (a Service
	 * backend answering a local pod), or a fragment or SCTP for a local pod
	 * (conntrack.h): up the stack, where conntrack reassembles and undoes it.
	 * Fragments for any other address are not the host's to reassemble (the
	 * gateway's, say: whole, they could be VXLAN for the node's socket), nor
	 * is SCTP the host's that no pod owns: dropped below as before.
	 */
	if (daddr == cfg->node_ip ||
	    ((ep || !(ipv4_is_fragment(ip) || ip->protocol == IPPROTO_SCTP)) && ct_host_translated(skb, ip))) {
		/* Reassembled up there, then through the bridge, unseen: each fragment is policy's here. */
		if (ep && ipv4_is_fragment(ip)) {
			ret = policy_check(skb, ep, DIR_INGRESS);
			if (ret)
				return ret;
		}
		if (bpf_skb_change_type(skb, PACKET_HOST) < 0)
			return DROP(REASON_DROP_INVALID);
		return TC_ACT_OK;
	}
	if (ep)
		return deliver_to_pod(skb, ep, 0);
	if (ipv4_in_prefix(daddr, cfg->pod_cidr, cfg->pod_prefix))
		return DROP(REASON_DROP_NO_ENDPOINT);
	return TC_ACT_OK;
}

static __always_inline int to_overlay(struct __sk_buff *skb)
{
	const struct bvcni_config *cfg;
	const struct tunnel_value *tun;
	struct bpf_tunnel_key key;
	struct iphdr *ip;
	int ret;

	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) == 0)
		return TC_ACT_OK; /* set by bpf_pod */
	ip = entry_ipv4(skb, &cfg, &ret);
	if (!ip)
		return ret;
#ifdef BVCNI_POLICY
	/*
	 * A local pod's packet without a tunnel key came through the host stack:
	 * a Service's, DNAT'd there to a backend on another node. Its egress was
	 * deferred to the backend (lib/policy.h): decided here, before it leaves.
	 * The node's own packets (from its IP) skip the lookup: endpoints are
	 * podCIDR addresses.
	 */
	if (ipv4_in_prefix(ip->saddr, cfg->pod_cidr, cfg->pod_prefix)) {
		const struct endpoint_value *ep = endpoint_get(ip->saddr);

		if (ep) {
			ret = policy_check(skb, ep, DIR_EGRESS);
			if (ret)
				return ret;
		}
	}
#endif
	tun = tunnel_get(ip->daddr);
	if (!tun)
		return DROP(REASON_DROP_NO_TUNNEL);
	ret = overlay_xmit(skb, cfg, tun);
	if (ret)
		return ret;
	/* Not sent, the packet unchanged: the device encapsulates it for its key. */
	return encap_set_key(skb, cfg, tun);
}

SEC("tc")
int overlay_from_tunnel(struct __sk_buff *skb)
{
	return verdict(skb, from_overlay(skb), DIR_INGRESS, HOOK_OVERLAY_IN);
}

SEC("tc")
int overlay_to_tunnel(struct __sk_buff *skb)
{
	return verdict(skb, to_overlay(skb), DIR_EGRESS, HOOK_OVERLAY_OUT);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
