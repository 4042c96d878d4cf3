/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * hostPort: the portMappings capability in the programs, without iptables.
 *
 * A packet for one of the node's addresses and a mapped (hostPort, protocol)
 * is translated to the pod's address and containerPort and delivered to the
 * pod past the host stack; the source stays the client's, so the pod sees the
 * real client address. Three entry points meet such packets, each with one
 * call to hostport_to_pod: the uplink's ingress (bpf_host: clients outside
 * the cluster, other nodes), the VXLAN device's ingress (bpf_overlay: pods of
 * other nodes, which reach this node's IP through the overlay) and each pod's
 * veth (bpf_pod: pods of this node, hairpin included).
 *
 * Reverse translation keeps state, one entry per flow (bvcni_hostport_flows,
 * abi.h), keyed by the reply as it leaves the pod. A rule keyed by the pod's
 * (address, port) alone would be wrong: the same containerPort also answers
 * clients that reached the pod directly (a Service backend, another pod), and
 * their replies must keep the pod's address; and the address a client used
 * (a mapping for 0.0.0.0 takes whichever the wildcard matched) is known only
 * from its own packets. The masquerade's map was not used: its entries are
 * reservations of NAT ports with their own expiry and reuse rules
 * (lib/nat.h), which a DNAT does not have. A reply is translated only while
 * the mapping still points at the pod (one more lookup, only for packets
 * that hit a flow entry), so DEL stops a hostPort at once, with no cleanup
 * of the flow map; the LRU recycles stale entries. Only pods that own a
 * mapping (ENDPOINT_F_HOSTPORT in their endpoint entry) pay the flow lookup.
 *
 * What is not translated (the host stack gets it, as for an unmapped port):
 * other protocols, packets for addresses in the cluster CIDR, and IP
 * fragments past the first (no ports); a first fragment for a mapped port is
 * dropped (DROP_HOSTPORT_FAILED): the datagram cannot be translated whole.
 * SCTP is translated only where hostPort == containerPort: its CRC32c covers
 * no pseudo-header, so the address alone can change without touching it, but
 * a port rewrite would need the whole CRC recomputed (the plugin refuses
 * such mappings).
 *
 * Returns (lib/common.h's convention): hostport_to_pod TC_ACT_OK when the
 * packet is not for a hostPort, else the delivery's verdict or DROP(reason);
 * hostport_reply TC_ACT_OK when the packet is no reply of a hostPort flow or
 * when its source was rewritten in place for a destination in the cluster
 * CIDR (then *xlated = 1, for the caller to route on), else the verdict of
 * sending it out, or DROP(reason).
 */
#ifndef BVCNI_HOSTPORT_H
#define BVCNI_HOSTPORT_H

#include "maps.h"
#include "ipv4.h"

#if BVCNI_ABI_VERSION < 2
/*
 * The ABI 1 build (dist/bpf/abi1, what --prepare-downgrade leaves running
 * until v0.1.0 takes over) must declare exactly v0.1.0's maps, and v0.1.0
 * has no hostPort maps: these entry points let everything through, as
 * v0.1.0's programs do. Mappings in force stop translating for that window.
 */
static __always_inline int hostport_to_pod(struct __sk_buff *skb,
					   const struct bvcni_config *cfg,
					   const struct iphdr *ip, int from_xmit)
{
	return TC_ACT_OK;
}

static __always_inline int hostport_from_pod(struct __sk_buff *skb,
					     const struct bvcni_config *cfg,
					     const struct endpoint_value *ep,
					     struct iphdr **ipp)
{
	return TC_ACT_OK;
}
#else
#include "hostport_map.h"
#include "nat.h"
#include "deliver.h"
#include "fib.h"
#include "vxlan.h"


/*
 * Ports of a TCP, UDP or SCTP header (the same first 4 bytes in all three):
 * straight from the linear part, where they nearly always are (a helper
 * call costs ~40 ns, lib/forward.h), else through bpf_skb_load_bytes.
 */
static __always_inline int hostport_ports(struct __sk_buff *skb, __u32 l4off, __u16 *sport, __u16 *dport)
{
	void *data_end, *data = pkt_data(skb, &data_end);
	__u16 *l4 = data + l4off;
	__u16 p[2];

	if ((void *)(l4 + 2) <= data_end) {
		*sport = l4[0];
		*dport = l4[1];
		return 0;
	}
	if (bpf_skb_load_bytes(skb, l4off, p, sizeof(p)) < 0)
		return -1;
	*sport = p[0];
	*dport = p[1];
	return 0;
}

static __always_inline int hostport_proto(__u8 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP;
}

/*
 * A packet for a node address: when (address, port, protocol) is mapped,
 * DNAT it to the pod, remember the flow for the replies and deliver it.
 */
/*
 * from_xmit: called from bpf_pod on a netkit pod's pair, where the delivery
 * must use bpf_redirect (deliver.h).
 */
static __always_inline int hostport_to_pod(struct __sk_buff *skb, const struct bvcni_config *cfg, const struct iphdr *ip,
					   int from_xmit)
{
	const struct endpoint_value *ep;
	const struct hostport_value *hp;
	struct hostport_flow_key fk = {};
	struct hostport_flow_value fv = {};
	struct hostport_flow_value *old;
	struct nat_xlate x = {};
	__u32 daddr = ip->daddr, saddr = ip->saddr, key_ip, pod_ip, l4off;
	__u16 sport, dport, pod_port;
	__u8 proto = ip->protocol;
	int ret;

	if (!hostport_proto(proto))
		return TC_ACT_OK;
	/* Node addresses are never in the cluster CIDR: pod-to-pod traffic pays one compare. */
	if (daddr != cfg->node_ip && ipv4_in_prefix(daddr, cfg->cluster_cidr, cfg->cluster_prefix))
		return TC_ACT_OK;
	if (ip->frag_off & bpf_htons(IP_OFFSET))
		return TC_ACT_OK; /* no ports to map: the host's, as any unmapped packet */
	l4off = ETH_HLEN + ip->ihl * 4;
	if (hostport_ports(skb, l4off, &sport, &dport) < 0)
		return TC_ACT_OK;
	/*
	 * The plugin refuses hostPorts in the masquerade's range: the replies of
	 * masqueraded flows, which arrive on those ports, skip both lookups.
	 */
	if (nat_port_in_range(cfg, dport))
		return TC_ACT_OK;
	hp = hostport_lookup(cfg, daddr, dport, proto, &key_ip);
	if (!hp)
		return TC_ACT_OK;
	pod_ip = hp->pod_ip;
	pod_port = hp->pod_port;
	if (ip->frag_off & bpf_htons(IP_MF))
		return DROP(REASON_DROP_HOSTPORT_FAILED);
	ep = endpoint_get(pod_ip);
	if (!ep)
		return DROP(REASON_DROP_HOSTPORT_NO_POD);

	fk.pod_ip = pod_ip;
	fk.client_ip = saddr;
	fk.pod_port = pod_port;
	fk.client_port = sport;
	fk.proto = proto;
	old = bpf_map_lookup_elem(&BVCNI_MAP_HOSTPORT_FLOWS, &fk);
	if (!old || old->host_ip != daddr || old->host_port != dport || old->key_ip != key_ip) {
		fv.host_ip = daddr;
		fv.key_ip = key_ip;
		fv.host_port = dport;
		if (bpf_map_update_elem(&BVCNI_MAP_HOSTPORT_FLOWS, &fk, &fv, BPF_ANY) != 0)
			return DROP(REASON_DROP_HOSTPORT_FAILED);
	}

	if (proto == IPPROTO_SCTP) {
		if (pod_port != dport)
			return DROP(REASON_DROP_HOSTPORT_FAILED);
		x.addr = pod_ip;
	} else {
		struct nat_flow f = { .saddr = saddr, .daddr = daddr, .sport = sport, .dport = dport, .proto = proto };

		/* The ports are read: the rest of the header is the checksum's, which the helper reads. */
		nat_l4_offsets(&f, l4off, 0);
		ret = nat_xlate_l4(skb, &f, 0, daddr, pod_ip, dport, pod_port, &x);
		if (ret)
			return DROP(REASON_DROP_HOSTPORT_FAILED);
	}
	return deliver_routed_to_pod(skb, ep, &x, from_xmit);
}

/*
 * A pod's SYN-ACK to a hostPort client outside the cluster: the MSS it
 * offers is its interface's (MTU - 40), and the pod MTU leaves room for the
 * VXLAN header (uplink - VXLAN_ENCAP_LEN). This flow's segments never cross
 * the overlay: they come in at the uplink, at the uplink's MTU, and
 * bpf_redirect_peer hands them to the pod, whose stack takes segments larger
 * than its own MTU (an MTU limits what a device sends). So the offer is
 * raised to the uplink's (MTU - 40 + VXLAN_ENCAP_LEN); the client still
 * takes the smaller of it and its own, and path-MTU discovery on its way to
 * the node works as for any host. Measured (README, "Where a hostPort
 * stream's throughput goes"): the 50 bytes cost the path 20-30% more CPU per
 * byte. An MSS the application lowered (TCP_MAXSEG) is not the interface's
 * and is kept, as is everything that is not Linux's layout (MSS first, in a
 * header without IP options); one helper pair per connection.
 */
static __always_inline int hostport_raise_mss(struct __sk_buff *skb, const struct bvcni_config *cfg, __u32 l4off)
{
	void *data_end, *data = pkt_data(skb, &data_end);
	__u8 *tcp = data + ETH_HLEN + sizeof(struct iphdr);
	__u16 old_mss, new_mss;

	if (l4off != ETH_HLEN + sizeof(struct iphdr) || !cfg->mtu)
		return TC_ACT_OK;
	/* The fixed header and one MSS option (kind 2, length 4). */
	if ((void *)(tcp + 24) > data_end)
		return TC_ACT_OK;
	if ((tcp[13] & (TCPF_SYN | TCPF_ACK)) != (TCPF_SYN | TCPF_ACK) || (tcp[12] >> 4) < 6 ||
	    tcp[20] != 2 || tcp[21] != 4)
		return TC_ACT_OK;
	__builtin_memcpy(&old_mss, tcp + 22, 2);
	if (bpf_ntohs(old_mss) != cfg->mtu - 40)
		return TC_ACT_OK;
	new_mss = bpf_htons(cfg->mtu - 40 + VXLAN_ENCAP_LEN);
	if (bpf_l4_csum_replace(skb, l4off + 16, old_mss, new_mss, 2) < 0 ||
	    bpf_skb_store_bytes(skb, l4off + 22, &new_mss, 2, 0) < 0)
		return DROP(REASON_DROP_HOSTPORT_FAILED);
	return TC_ACT_OK;
}

/*
 * A packet a pod sends: if it answers a flow translated to one of its
 * hostPorts (and the mapping still stands), its source becomes the address
 * and port the client used. For a destination in the cluster CIDR it is
 * rewritten in place and *xlated = 1: the caller routes it on (packet
 * pointers are then invalid); the rest is translated and sent out here.
 */
static __always_inline int hostport_reply(struct __sk_buff *skb, const struct bvcni_config *cfg,
					  const struct endpoint_value *ep, const struct iphdr *ip, int *xlated)
{
	struct hostport_flow_key fk = {};
	struct hostport_key k = {};
	const struct hostport_flow_value *fv;
	const struct hostport_value *hp;
	__u32 l4off, old_ip = ip->saddr, new_ip, csum_off = 0;
	__u16 old_port, new_port, dport;
	__u32 daddr = ip->daddr;
	__u8 proto = ip->protocol, tos = ip->tos;
	__u64 mangled0 = 0;

	if (!(ep->flags & ENDPOINT_F_HOSTPORT) || !hostport_proto(proto))
		return TC_ACT_OK;
	if (ip->frag_off & bpf_htons(IP_OFFSET))
		return TC_ACT_OK;
	l4off = ETH_HLEN + ip->ihl * 4;
	if (hostport_ports(skb, l4off, &old_port, &dport) < 0)
		return TC_ACT_OK;
	fk.pod_ip = old_ip;
	fk.client_ip = ip->daddr;
	fk.pod_port = old_port;
	fk.client_port = dport;
	fk.proto = proto;
	fv = bpf_map_lookup_elem(&BVCNI_MAP_HOSTPORT_FLOWS, &fk);
	if (!fv)
		return TC_ACT_OK;
	k.host_ip = fv->key_ip;
	k.port = fv->host_port;
	k.proto = proto;
	new_ip = fv->host_ip;
	new_port = fv->host_port;
	hp = bpf_map_lookup_elem(&BVCNI_MAP_HOSTPORT, &k);
	if (!hp || hp->pod_ip != old_ip || hp->pod_port != old_port)
		return TC_ACT_OK; /* the mapping is gone (DEL) or another pod's now: not ours to translate */
	if (ip->frag_off & bpf_htons(IP_MF))
		return DROP(REASON_DROP_HOSTPORT_FAILED);
	if (proto == IPPROTO_SCTP && new_port != old_port)
		return DROP(REASON_DROP_HOSTPORT_FAILED); /* see the header comment */

	/*
	 * Anything outside the cluster (another node's own address included) is
	 * routed out here, past the host stack, which would drop a packet from a
	 * pod with one of the host's addresses as its source, and past the
	 * masquerade. Not through the tunnel to another node's IP either: that
	 * node sent the request over the underlay, and its reverse-path filter
	 * expects the answer there. As the masquerade does: the L4 checksum here,
	 * the address and port by forward_write with the MACs and the TTL, in one
	 * store (lib/forward.h).
	 */
	if (!ipv4_in_prefix(daddr, cfg->cluster_cidr, cfg->cluster_prefix)) {
		struct nat_flow f = { .saddr = old_ip, .daddr = daddr, .sport = old_port, .dport = dport, .proto = proto };
		struct nat_xlate x = {};
		int ret;

		if (proto == IPPROTO_TCP) {
			ret = hostport_raise_mss(skb, cfg, l4off);
			if (ret)
				return ret;
		}
		if (proto == IPPROTO_SCTP) {
			x.addr = new_ip;
			x.is_src = 1;
		} else {
			nat_l4_offsets(&f, l4off, 1);
			if (nat_xlate_l4(skb, &f, 1, old_ip, new_ip, old_port, new_port, &x))
				return DROP(REASON_DROP_HOSTPORT_FAILED);
		}
		return fib_redirect(skb, cfg->bridge_ifindex, new_ip, daddr, tos, &x);
	}

	/* A pod's client (local, or another node's through the tunnel): rewritten in place, for the caller to route. */
	if (proto == IPPROTO_TCP) {
		csum_off = l4off + 16;
	} else if (proto == IPPROTO_UDP) {
		csum_off = l4off + 6;
		mangled0 = BPF_F_MARK_MANGLED_0;
	}
	if (csum_off) {
		if (bpf_l4_csum_replace(skb, csum_off, old_port, new_port, mangled0 | 2) < 0 ||
		    bpf_l4_csum_replace(skb, csum_off, old_ip, new_ip, BPF_F_PSEUDO_HDR | mangled0 | 4) < 0)
			return DROP(REASON_DROP_HOSTPORT_FAILED);
		if (bpf_skb_store_bytes(skb, l4off, &new_port, 2, 0) < 0)
			return DROP(REASON_DROP_HOSTPORT_FAILED);
	}
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_ip, new_ip, 4) < 0 ||
	    bpf_skb_store_bytes(skb, IP_SRC_OFF, &new_ip, 4, 0) < 0)
		return DROP(REASON_DROP_HOSTPORT_FAILED);
	*xlated = 1;
	return TC_ACT_OK;
}

/*
 * bpf_pod's one call: a reply of a hostPort flow gets its source translated
 * (and goes out here, or on as pod traffic with *ipp refreshed), a packet for
 * a hostPort goes to its pod; TC_ACT_OK: neither, carry on.
 */
static __always_inline int hostport_from_pod(struct __sk_buff *skb, const struct bvcni_config *cfg,
					     const struct endpoint_value *ep, struct iphdr **ipp)
{
	int xlated = 0;
	int ret = hostport_reply(skb, cfg, ep, *ipp, &xlated);

	if (ret)
		return ret;
	if (xlated) {
		*ipp = ipv4_hdr(skb, &ret);
		return *ipp ? TC_ACT_OK : DROP(REASON_DROP_INVALID);
	}
	return hostport_to_pod(skb, cfg, *ipp, (ep->flags & ENDPOINT_F_NETKIT) != 0);
}

#endif /* BVCNI_ABI_VERSION < 2 */

#endif
