/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * NetworkPolicy enforcement (issue 16; the compiled form: src/policy/README.md).
 *
 * Egress is decided where the source pod is, in bpf_pod before any
 * translation (the pod's view), but for a ClusterIP: there kube-proxy's DNAT
 * picks the peer, so egress is decided on the translated packet, where it
 * next meets a program (bpf_to_pod, bpf_overlay's egress; see
 * bvcni_policy_check). Ingress is decided where the destination pod is, at
 * every delivery to a local pod (deliver.h) and on what the host stack hands
 * it (bpf_to_pod), after any translation (a hostPort or Service DNAT, a
 * masquerade reply): the pod's view again, with the client's real address. The peer's identity comes from bvcni_ipcache (no entry: world),
 * then at most two LPM lookups in bvcni_policy, (peer, proto, port) and
 * (ANY, proto, port), and only for a flow's first packet: bvcni_pod_ct
 * remembers the flows an isolated pod opened or accepted, so established
 * flows and their replies (both ways) pass on one hash lookup.
 *
 * Cost: an endpoint with no policy flag pays the flag test in the caller and
 * nothing else. The check is one global function (verified once, not once
 * per call site and path: bpf_pod is close to the verifier's budget).
 *
 * Decisions:
 *  - Traffic between a pod and its own node always passes, both ways, as
 *    Kubernetes defines it ("traffic to and from the node where a Pod is
 *    running is always allowed": kubelet probes, and the answers to them).
 *    The node's flows are not tracked (bpf_to_pod lets them pass before
 *    any lookup), so a pod's answers to its node (the node IP, or its
 *    gateway: a pod-CIDR address with no endpoint) could not be told from
 *    new packets for UDP. Other nodes are addresses like any other.
 *  - A pod whose labels are not known yet (ENDPOINT_F_POLICY_PENDING): only
 *    the traffic between it and its node, both ways.
 *  - Fragments: a first fragment carries the ports and is decided as its
 *    flow. The others carry none: they pass a direction that is not isolated
 *    (or when the flow is tracked ... which cannot be known without ports),
 *    else only where a rule allows every port of their protocol (or every
 *    protocol) to the peer: a port-scoped rule never lets a non-first
 *    fragment through, so no port check can be skipped by fragmenting.
 *    DROP_POLICY_FRAGMENT otherwise (large UDP datagrams to a port-scoped
 *    rule: no fragment tracking yet).
 *  - ICMP errors (destination unreachable, which includes fragmentation
 *    needed, and time exceeded) pass when the packet they quote belongs to a
 *    tracked flow of the endpoint; otherwise they are a new ICMP packet to
 *    policy (only "every protocol" rules allow ICMP), never tracked.
 *  - A TCP packet without a tracked flow is a new flow whatever its flags:
 *    policy decides (an ACK or RST from a denied peer is dropped).
 *  - Flows that started before an endpoint became isolated are not tracked:
 *    they are decided anew, as new flows.
 */
#ifndef BVCNI_POLICY_H
#define BVCNI_POLICY_H

#include "maps.h"
#include "ipv4.h"

#if BVCNI_ABI_VERSION >= 2 && !defined(BVCNI_NO_POLICY)
#define BVCNI_POLICY 1
#endif

#define ENDPOINT_F_POLICY (ENDPOINT_F_INGRESS_ISOLATED | ENDPOINT_F_EGRESS_ISOLATED | ENDPOINT_F_POLICY_PENDING)

#ifndef BVCNI_POLICY
/* The ABI 1 build (v0.1.0 has no policy maps) and the benchmark's policy-free build. */
static __always_inline int policy_check(struct __sk_buff *skb, const struct endpoint_value *ep, __u32 dir)
{
	return TC_ACT_OK;
}
#else

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

struct policy_flow {
	__u32 osaddr;           /* the packet's own addresses (an ICMP error's, not the quoted ones) */
	__u32 odaddr;
	__u32 saddr;
	__u32 daddr;
	__u16 sport;            /* network order; ICMP echo: the id (request) */
	__u16 dport;            /* network order; ICMP echo reply: the id */
	__u8  proto;
	__u8  tcp_flags;
	__u8  kind;             /* enum policy_kind */
	__u8  pad;
};

enum policy_kind {
	PKT_NORMAL   = 0,
	PKT_FRAGMENT = 1,       /* a fragment past the first: no ports */
	PKT_ICMP_ERR = 2,       /* an ICMP error: the flow fields are the quoted packet's */
};

/*
 * Ports (or the ICMP echo id) of the L4 header at off; the quoted one when
 * inner. Loaded straight into the flow, field by field: this runs in a
 * function whose stack adds to bpf_pod's (512 bytes for both).
 */
static __always_inline int policy_load_l4(struct __sk_buff *skb, __u32 off, struct policy_flow *f, int inner)
{
	if (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP || f->proto == IPPROTO_SCTP) {
		/* sport and dport are adjacent in the flow, as in the header. */
		if (bpf_skb_load_bytes(skb, off, &f->sport, 4) < 0)
			return -1;
		/* An ICMP error quotes 8 bytes of L4: the ports, not TCP's flags. */
		if (f->proto == IPPROTO_TCP && !inner && bpf_skb_load_bytes(skb, off + 13, &f->tcp_flags, 1) < 0)
			return -1;
		return 0;
	}
	if (f->proto == IPPROTO_ICMP) {
		__u16 id;

		/* For ICMP: the type in tcp_flags, to tell a request from the rest. */
		if (bpf_skb_load_bytes(skb, off, &f->tcp_flags, 1) < 0 || bpf_skb_load_bytes(skb, off + 4, &id, 2) < 0)
			return -1;
		/* An echo and its reply are one flow: the request's (id, 0) reversed. */
		if (f->tcp_flags == ICMP_ECHO)
			f->sport = id;
		else if (f->tcp_flags == ICMP_ECHOREPLY)
			f->dport = id;
		else if (!inner && (f->tcp_flags == ICMP_DEST_UNREACH || f->tcp_flags == ICMP_TIME_EXCEEDED))
			f->kind = PKT_ICMP_ERR;
	}
	return 0;
}

/* The flow of the packet at L3_OFF (for an ICMP error, the quoted packet's); -1: unreadable. */
static __always_inline int policy_parse(struct __sk_buff *skb, struct policy_flow *f)
{
	struct iphdr ip;
	__u32 l4off;

	if (bpf_skb_load_bytes(skb, L3_OFF, &ip, sizeof(ip)) < 0 || ip.ihl < 5)
		return -1;
	f->osaddr = f->saddr = ip.saddr;
	f->odaddr = f->daddr = ip.daddr;
	f->proto = ip.protocol;
	if (ip.frag_off & bpf_htons(IP_OFFSET)) {
		f->kind = PKT_FRAGMENT;
		return 0;
	}
	l4off = L3_OFF + ip.ihl * 4;
	if (policy_load_l4(skb, l4off, f, 0) < 0)
		return -1;
	if (f->kind == PKT_ICMP_ERR) {
		/* The quoted header (into the same buffer) and the first 8 bytes of what followed it. */
		if (bpf_skb_load_bytes(skb, l4off + 8, &ip, sizeof(ip)) < 0 || ip.ihl < 5)
			return -1;
		f->saddr = ip.saddr;
		f->daddr = ip.daddr;
		f->proto = ip.protocol;
		f->sport = 0;
		f->dport = 0;
		f->tcp_flags = 0;
		if (ip.frag_off & bpf_htons(IP_OFFSET))
			return 0; /* quotes a non-first fragment: no ports, matches a flow only with none */
		if (policy_load_l4(skb, l4off + 8 + ip.ihl * 4, f, 1) < 0)
			return -1;
	}
	return 0;
}

static __always_inline __u64 pod_ct_timeout(const struct pod_ct_value *v, __u8 proto)
{
	if (proto == IPPROTO_TCP) {
		if ((v->flags & POD_CT_F_RST) || (v->flags & (POD_CT_F_FIN_FWD | POD_CT_F_FIN_REV)) == (POD_CT_F_FIN_FWD | POD_CT_F_FIN_REV))
			return POD_CT_TIMEOUT_TCP_CLOSE;
		return (v->flags & POD_CT_F_REPLY) ? POD_CT_TIMEOUT_TCP_EST : POD_CT_TIMEOUT_TCP_SYN;
	}
	if (proto == IPPROTO_ICMP)
		return POD_CT_TIMEOUT_ICMP;
	return POD_CT_TIMEOUT_UDP;
}

static __always_inline int pod_ct_live(const struct pod_ct_value *v, __u8 proto, __u64 now)
{
	return now - v->last_seen_ns <= pod_ct_timeout(v, proto);
}

/*
 * The tracked flow this packet belongs to, seen from the endpoint's side
 * `dir`: its own (key as the packet, dir), or the other way's (reversed,
 * the other dir: an answer to what the endpoint opened or accepted). 1 when
 * found live (and refreshed; update: also its TCP flags), else 0.
 */
static __always_inline int pod_ct_lookup(const struct policy_flow *f, __u32 dir, __u64 now, int update)
{
	struct pod_ct_key k = {
		.saddr = f->saddr, .daddr = f->daddr, .sport = f->sport, .dport = f->dport,
		.proto = f->proto, .dir = dir,
	};
	struct pod_ct_value *v;
	__u8 flags, add = 0;
	int reply = 0;

	v = bpf_map_lookup_elem(&BVCNI_MAP_POD_CT, &k);
	if (!v) {
		k.saddr = f->daddr;
		k.daddr = f->saddr;
		k.sport = f->dport;
		k.dport = f->sport;
		k.dir = dir == DIR_INGRESS ? DIR_EGRESS : DIR_INGRESS;
		v = bpf_map_lookup_elem(&BVCNI_MAP_POD_CT, &k);
		if (!v)
			return 0;
		reply = 1;
	}
	if (!pod_ct_live(v, f->proto, now))
		return 0;
	flags = v->flags;
	if (update && f->proto == IPPROTO_TCP) {
		/* A new SYN from the opener on a closed flow: a new connection, policy's again. */
		if (!reply && (f->tcp_flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN &&
		    pod_ct_timeout(v, f->proto) == POD_CT_TIMEOUT_TCP_CLOSE)
			return 0;
		if (f->tcp_flags & TCPF_RST)
			add |= POD_CT_F_RST;
		if (f->tcp_flags & TCPF_FIN)
			add |= reply ? POD_CT_F_FIN_REV : POD_CT_F_FIN_FWD;
	}
	if (update && reply)
		add |= POD_CT_F_REPLY;
	/* Written only when something changed, or once a second: no cache line bouncing per packet. */
	if ((flags | add) != flags)
		v->flags = flags | add;
	if (update && now - v->last_seen_ns > POD_CT_REFRESH_NS)
		v->last_seen_ns = now;
	return 1;
}

static __always_inline int pod_ct_create(const struct policy_flow *f, __u32 dir, __u64 now, __u32 rule_ref)
{
	struct pod_ct_key k = {
		.saddr = f->saddr, .daddr = f->daddr, .sport = f->sport, .dport = f->dport,
		.proto = f->proto, .dir = dir,
	};
	struct pod_ct_value v = { .last_seen_ns = now, .rule_ref = rule_ref };

	if (f->proto == IPPROTO_TCP && (f->tcp_flags & TCPF_RST))
		v.flags = POD_CT_F_RST;
	return bpf_map_update_elem(&BVCNI_MAP_POD_CT, &k, &v, BPF_ANY);
}

/* The peer's identity: the longest ipcache prefix holding it; the world when none does. */
static __always_inline __u32 policy_identity(__u32 addr)
{
	struct ipcache_key k = { .prefixlen = 32, .addr = addr };
	const struct ipcache_value *v = bpf_map_lookup_elem(&BVCNI_MAP_IPCACHE, &k);

	return v ? v->identity : ID_WORLD;
}

/* Whether (peer, proto, port), then (ANY, proto, port), is allowed to the endpoint; the entry's rule_ref in *ref. */
static __always_inline int policy_allowed(__u32 endpoint, __u32 identity, __u32 dir, __u8 proto, __u16 dport, __u32 *ref)
{
	struct policy_key k = {
		.prefixlen = 96, .endpoint = endpoint, .identity = bpf_htonl(identity),
		.direction = dir, .proto = proto, .dport = dport,
	};
	const struct policy_value *v = bpf_map_lookup_elem(&BVCNI_MAP_POLICY, &k);

	if (!v) {
		k.identity = bpf_htonl(ID_ANY);
		v = bpf_map_lookup_elem(&BVCNI_MAP_POLICY, &k);
		if (!v)
			return 0;
	}
	*ref = v->rule_ref;
	return 1;
}

/*
 * The node talking to its pod: the node IP, or the bridge's address (the
 * gateway, the podCIDR's first host: src/dataplane/node.ts), which the
 * node's processes may send from (bound to it, or a masquerade picking it).
 * Stricter than policy_to_node: a source is what the host stack forwarded,
 * which may be anyone's.
 */
static __always_inline int policy_from_node(const struct bvcni_config *cfg, __u32 addr)
{
	return addr == cfg->node_ip || addr == bpf_htonl(bpf_ntohl(cfg->pod_cidr) + 1);
}

/* The pod talking to its own node (the node IP, or its gateway: a pod-CIDR address with no endpoint). */
static __always_inline int policy_to_node(const struct bvcni_config *cfg, __u32 addr)
{
	if (addr == cfg->node_ip)
		return 1;
	return ipv4_in_prefix(addr, cfg->pod_cidr, cfg->pod_prefix) && !endpoint_get(addr);
}

/*
 * The check itself: the packet at the endpoint's side dir (DIR_INGRESS: the
 * endpoint is the destination; DIR_EGRESS: the source), ep_flags its
 * endpoint's flags. TC_ACT_OK or DROP(reason). A global function: verified
 * once, whatever calls it (scalar arguments and the context only).
 */
__attribute__((noinline)) int bvcni_policy_check(struct __sk_buff *skb, __u32 ep_flags, __u32 dir)
{
	const struct bvcni_config *cfg = config_get();
	struct policy_flow f = {};
	__u32 endpoint, peer, identity, ref = 0, isolated;
	__u64 now;

	if (!cfg)
		return DROP(REASON_DROP_NO_CONFIG);
	if (policy_parse(skb, &f) < 0)
		return DROP(REASON_DROP_INVALID);
	endpoint = dir == DIR_INGRESS ? f.odaddr : f.osaddr;
	peer = dir == DIR_INGRESS ? f.osaddr : f.odaddr;

	/* Between the pod and its own node: always (see the header comment). */
	if (dir == DIR_INGRESS) {
		if (policy_from_node(cfg, peer))
			return TC_ACT_OK;
	} else if (policy_to_node(cfg, peer)) {
		return TC_ACT_OK;
	}
	identity = policy_identity(peer);
	if (dir == DIR_INGRESS && identity == ID_HOST)
		return TC_ACT_OK;
	if (ep_flags & ENDPOINT_F_POLICY_PENDING)
		return DROP(REASON_DROP_POLICY_PENDING);

	isolated = ep_flags & (dir == DIR_INGRESS ? ENDPOINT_F_INGRESS_ISOLATED : ENDPOINT_F_EGRESS_ISOLATED);
	/*
	 * A ClusterIP is no peer: kube-proxy's DNAT, in the host stack after this
	 * (bpf_pod), picks the backend, and the backend is what egress rules name.
	 * So the flow is only tracked here, as the pod sent it (the un-DNAT'd
	 * replies come from the ClusterIP and find it), and egress is decided on
	 * the translated packet where it next meets a program: bpf_to_pod (a
	 * backend on this node) or bpf_overlay's egress (on another node).
	 */
	if (dir == DIR_EGRESS && cfg->service_prefix && ipv4_in_prefix(peer, cfg->service_cidr, cfg->service_prefix))
		isolated = 0;
	if (f.kind == PKT_FRAGMENT) {
		if (!isolated || policy_allowed(endpoint, identity, dir, f.proto, 0, &ref))
			return TC_ACT_OK;
		return DROP(REASON_DROP_POLICY_FRAGMENT);
	}

	now = bpf_ktime_get_coarse_ns();
	if (f.kind == PKT_ICMP_ERR) {
		/*
		 * The quoted packet went the other way, and was the endpoint's own
		 * (it sent it, or it was for it): an error quoting another pod's
		 * flow says nothing of this one's.
		 */
		__u32 quoted = dir == DIR_INGRESS ? f.saddr : f.daddr;

		if (quoted == endpoint && pod_ct_lookup(&f, dir == DIR_INGRESS ? DIR_EGRESS : DIR_INGRESS, now, 0))
			return TC_ACT_OK;
		if (!isolated || policy_allowed(endpoint, identity, dir, IPPROTO_ICMP, 0, &ref))
			return TC_ACT_OK;
		return DROP(dir == DIR_INGRESS ? REASON_DROP_POLICY_INGRESS : REASON_DROP_POLICY_EGRESS);
	}
	if (pod_ct_lookup(&f, dir, now, 1))
		return TC_ACT_OK;
	/* A new flow. ICMP rules carry no port (only "every protocol" entries allow ICMP). */
	if (isolated && !policy_allowed(endpoint, identity, dir, f.proto, f.proto == IPPROTO_ICMP ? 0 : f.dport, &ref))
		return DROP(dir == DIR_INGRESS ? REASON_DROP_POLICY_INGRESS : REASON_DROP_POLICY_EGRESS);
	/* Tracked even where this direction is open: the answers may cross an isolated one. */
	if (pod_ct_create(&f, dir, now, ref) < 0)
		return DROP(REASON_DROP_POLICY_CT);
	return TC_ACT_OK;
}

/* The callers' one line: a flag test for endpoints without policy. */
static __always_inline int policy_check(struct __sk_buff *skb, const struct endpoint_value *ep, __u32 dir)
{
	__u32 flags = ep->flags;

	if (!(flags & ENDPOINT_F_POLICY))
		return TC_ACT_OK;
	return bvcni_policy_check(skb, flags, dir);
}

#endif /* BVCNI_POLICY */

#endif
