/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Masquerade: SNAT of pod traffic leaving the cluster to the node IP, and the
 * reverse translation of its replies (and of the ICMP errors quoting it) at
 * the uplink. Layout and expiry policy of the map are documented in abi.h.
 *
 * Returns (common.h): TC_ACT_OK or DROP(reason); what was translated is in
 * the out-parameters, empty (0) when the packet is not the NAT's. Both
 * directions leave the address and port fields to forward_write
 * (lib/forward.h), which stores them with the MACs and the TTL in one write.
 * Every helper that writes the packet invalidates packet pointers: values
 * needed later are copied first.
 */
#ifndef BVCNI_NAT_H
#define BVCNI_NAT_H

#include "maps.h"
#include "csum.h"
#include "ipv4.h"
#include "conntrack.h"
#include "forward.h"

struct nat_flow {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;    /* network order */
	__u16 dport;    /* network order */
	__u8  proto;
	__u8  tcp_flags;
	__u16 l4_csum_off;  /* packet offset of the L4 checksum */
	__u16 port_off;     /* packet offset of the field that carries our port (sport/dport/echo id) */
};

/*
 * Timeouts are seconds long: the clock's tick resolution is plenty, and the
 * coarse clock costs no clock-source read (~30 ns per packet in a VM).
 */
static __always_inline __u64 nat_now(void)
{
	return bpf_ktime_get_coarse_ns();
}

static __always_inline __u64 nat_timeout(__u8 proto, __u8 state)
{
	if (proto == IPPROTO_UDP)
		return NAT_TIMEOUT_UDP;
	if (proto == IPPROTO_ICMP)
		return NAT_TIMEOUT_ICMP;
	switch (state) {
	case NAT_TCP_SYN:
		return NAT_TIMEOUT_TCP_SYN;
	case NAT_TCP_FIN:
	case NAT_TCP_FIN_POD:
	case NAT_TCP_LAST_ACK:
		return NAT_TIMEOUT_TCP_FIN;
	case NAT_TCP_TIME_WAIT:
		return NAT_TIMEOUT_TCP_TIME_WAIT;
	case NAT_TCP_CLOSED:
		return NAT_TIMEOUT_TCP_CLOSED;
	default:
		return NAT_TIMEOUT_TCP_EST;
	}
}

static __always_inline int nat_stale_at(__u64 last_seen, __u8 state, __u8 proto, __u64 now)
{
	return now > last_seen && now - last_seen > nat_timeout(proto, state);
}

static __always_inline int nat_stale(const struct nat_entry *e, __u8 proto, __u64 now)
{
	return nat_stale_at(e->last_seen_ns, e->tcp_state, proto, now);
}

/*
 * Takes a reservation over for flow f, in place, when the port reuse rule in
 * abi.h allows it (or it is f's already). In place because an LRU update pops
 * a node from the LRU's free list and pushes the replaced one back, under
 * locks: in a stream of short connections, where nearly every new connection
 * reuses a closed reservation, those two updates per SYN were ~40% of the pod
 * program's time. A compare-and-swap of created_ns settles a race between two
 * pods claiming the same reservation (the loser tries its next port):
 * created_ns because only claims write it, and they only ever raise it, so
 * the swap cannot succeed twice on one value (last_seen_ns can: packets write
 * it, and at the clock's tick resolution often with the same value).
 */
static __always_inline int nat_claim(struct nat_entry *re, const struct nat_flow *f, __u64 now, __u8 state)
{
	__u64 created = *(volatile __u64 *)&re->created_ns;
	__u8 old_state = re->tcp_state;

	if (!nat_stale_at(re->last_seen_ns, old_state, f->proto, now) &&
	    !(f->proto == IPPROTO_TCP && old_state == NAT_TCP_CLOSED) &&
	    !(re->to_addr == f->saddr && re->to_port == f->sport))
		return 0;
	if (__sync_val_compare_and_swap(&re->created_ns, created, now > created ? now : created + 1) != created)
		return 0;
	re->last_seen_ns = now;
	re->to_addr = f->saddr;
	re->to_port = f->sport;
	re->flags = 0;
	re->tcp_state = state;
	return 1;
}

static __always_inline __u8 nat_tcp_next(__u8 state, __u8 flags, int from_pod)
{
	if (flags & TCPF_RST)
		return NAT_TCP_CLOSED;
	if (from_pod && (flags & TCPF_SYN) && !(flags & TCPF_ACK))
		return NAT_TCP_SYN;
	if (flags & TCPF_FIN) {
		/* Who closes first decides who keeps TIME_WAIT. */
		if (state == NAT_TCP_FIN_POD || state == NAT_TCP_LAST_ACK)
			return from_pod ? state : NAT_TCP_LAST_ACK;
		if (state == NAT_TCP_FIN || state == NAT_TCP_TIME_WAIT)
			return from_pod ? NAT_TCP_TIME_WAIT : state;
		return from_pod ? NAT_TCP_FIN_POD : NAT_TCP_FIN;
	}
	if (state == NAT_TCP_LAST_ACK && from_pod && (flags & TCPF_ACK))
		return NAT_TCP_CLOSED;
	if (!from_pod && state == NAT_TCP_SYN)
		return NAT_TCP_ESTABLISHED;
	if (state == NAT_TCP_NONE)
		return NAT_TCP_ESTABLISHED; /* picked up mid-stream (e.g. after eviction) */
	return state;
}

/*
 * Where a TCP or UDP flow's L4 checksum and the port we translate sit, its
 * header at l4off: the source port from the pod (egress), else the
 * destination port. For callers that read the ports themselves.
 */
static __always_inline void nat_l4_offsets(struct nat_flow *f, __u32 l4off, int egress)
{
	f->l4_csum_off = l4off + (f->proto == IPPROTO_TCP ? 16 : 6);
	f->port_off = egress ? l4off : l4off + 2;
}

/*
 * Reads the L4 part of the flow at l4off. egress: the pod's packet (ICMP
 * echo request only); ingress: a reply at the uplink (echo reply only).
 */
static __always_inline int nat_load_l4(struct __sk_buff *skb, __u32 l4off, struct nat_flow *f, int egress)
{
	if (f->proto == IPPROTO_TCP) {
		__u8 h[14];

		if (bpf_skb_load_bytes(skb, l4off, h, sizeof(h)) < 0)
			return DROP(REASON_DROP_INVALID);
		__builtin_memcpy(&f->sport, h, 2);
		__builtin_memcpy(&f->dport, h + 2, 2);
		f->tcp_flags = h[13];
		nat_l4_offsets(f, l4off, egress);
		return TC_ACT_OK;
	}
	if (f->proto == IPPROTO_UDP) {
		__u16 p[2];

		if (bpf_skb_load_bytes(skb, l4off, p, sizeof(p)) < 0)
			return DROP(REASON_DROP_INVALID);
		f->sport = p[0];
		f->dport = p[1];
		nat_l4_offsets(f, l4off, egress);
		return TC_ACT_OK;
	}
	if (f->proto == IPPROTO_ICMP) {
		struct icmphdr_min icmp;

		if (bpf_skb_load_bytes(skb, l4off, &icmp, sizeof(icmp)) < 0)
			return DROP(REASON_DROP_INVALID);
		if (egress && icmp.type == ICMP_ECHO) {
			f->sport = icmp.id;
			f->dport = 0;
		} else if (!egress && icmp.type == ICMP_ECHOREPLY) {
			f->sport = 0;
			f->dport = icmp.id;
		} else {
			return DROP(REASON_DROP_UNSUPPORTED);
		}
		f->l4_csum_off = l4off + 2;
		f->port_off = l4off + 4;
		return TC_ACT_OK;
	}
	return DROP(REASON_DROP_UNSUPPORTED);
}

/* The map key of a flow as it stands on the wire, in one direction. */
static __always_inline void nat_key_of(const struct nat_flow *f, __u8 dir, struct nat_key *k)
{
	k->saddr = f->saddr;
	k->daddr = f->daddr;
	k->sport = f->sport;
	k->dport = f->dport;
	k->proto = f->proto;
	k->dir = dir;
}

static __always_inline __u32 nat_hash(const struct nat_flow *f, __u32 salt)
{
	__u32 h = f->saddr * 0x9e3779b1U;

	h ^= f->daddr + 0x7f4a7c15U + (h << 6) + (h >> 2);
	h ^= (((__u32)f->sport << 16) | f->dport) + (h << 6) + (h >> 2);
	h ^= f->proto + salt * 0x85ebca6bU;
	h *= 0xc2b2ae35U;
	return h ^ (h >> 16);
}

/* The i-th port of flow f's probe sequence (network order): NAT_PORT_RUN consecutive ports from each hashed start. */
static __always_inline __u16 nat_candidate(const struct nat_flow *f, __u32 min, __u32 range, __u32 i)
{
	__u32 start = nat_hash(f, i / NAT_PORT_RUN) % range;

	return bpf_htons((__u16)(min + (start + i % NAT_PORT_RUN) % range));
}

/*
 * Translates one address (with its pseudo-header share of the L4 checksum) and
 * one port-like field: the L4 checksum here, the fields themselves in x, for
 * forward_write to store with the rest of the headers. is_src: the IP source,
 * else the destination.
 */
static __always_inline int nat_xlate_l4(struct __sk_buff *skb, const struct nat_flow *f, int is_src,
					__u32 old_ip, __u32 new_ip, __u16 old_port, __u16 new_port,
					struct nat_xlate *x)
{
	__u64 pseudo = f->proto == IPPROTO_ICMP ? 0 : BPF_F_PSEUDO_HDR;
	__u64 mangled0 = f->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;

	if (old_port != new_port) {
		if (bpf_l4_csum_replace(skb, f->l4_csum_off, old_port, new_port, mangled0 | 2) < 0)
			return DROP(REASON_DROP_NAT_FAILED);
		x->port = new_port;
		x->port_off = f->port_off;
	}
	if (old_ip != new_ip) {
		if (pseudo && bpf_l4_csum_replace(skb, f->l4_csum_off, old_ip, new_ip, pseudo | mangled0 | 4) < 0)
			return DROP(REASON_DROP_NAT_FAILED);
		x->addr = new_ip;
		x->is_src = is_src;
	}
	return TC_ACT_OK;
}

static __always_inline int nat_port_in_range(const struct bvcni_config *cfg, __u16 port_be)
{
	__u16 p = bpf_ntohs(port_be);

	return p >= cfg->nat_port_min && p <= cfg->nat_port_max && cfg->nat_port_min;
}

/* The size of the masquerade's port range, 0 when none is configured. */
static __always_inline __u32 nat_port_range(const struct bvcni_config *cfg)
{
	__u32 min = cfg->nat_port_min, max = cfg->nat_port_max;

	return min && max >= min ? max - min + 1 : 0;
}

/* The key of flow f's reservation (its INGRESS entry), all but the port it reserves (rkey->dport). */
static __always_inline void nat_rkey_of(const struct nat_flow *f, const struct bvcni_config *cfg, struct nat_key *rkey)
{
	rkey->saddr = f->daddr;
	rkey->daddr = cfg->node_ip;
	rkey->sport = f->dport;
	rkey->proto = f->proto;
	rkey->dir = NAT_DIR_INGRESS;
}

/* Whether re is a live reservation of flow f's: if it expired and went to another pod, f needs a new one. */
static __always_inline int nat_held_by(const struct nat_entry *re, const struct nat_flow *f, __u64 now)
{
	return re && re->to_addr == f->saddr && re->to_port == f->sport && !nat_stale(re, f->proto, now);
}

/* A packet of the pod's flow keeps its reservation alive and moves its TCP state. */
static __always_inline void nat_touch_egress(struct nat_entry *re, const struct nat_flow *f, __u64 now)
{
	re->last_seen_ns = now;
	if (f->proto == IPPROTO_TCP)
		re->tcp_state = nat_tcp_next(re->tcp_state, f->tcp_flags, 1);
}

/*
 * Find the mapping: the port (network order) flow f holds, its reservation
 * refreshed, or 0 when it holds none. *fe: f's EGRESS entry when it was read
 * and found (it is not read when the first candidate port is f's).
 */
static __always_inline __u16 nat_egress_lookup(const struct bvcni_config *cfg, const struct nat_flow *f, __u64 now,
					       struct nat_entry **fe)
{
	struct nat_key fkey = {}, rkey = {};
	struct nat_entry *re;
	__u32 range = nat_port_range(cfg);
	__u16 port;

	nat_rkey_of(f, cfg, &rkey);
	/*
	 * A flow sits on its first hashed candidate port unless that was taken
	 * when it started: then its reservation, looked up directly, is all a
	 * packet needs, and the EGRESS entry (another lookup of a cold entry, half
	 * the NAT's cost per packet) is read only for the others.
	 */
	if (range) {
		rkey.dport = nat_candidate(f, cfg->nat_port_min, range, 0);
		re = bpf_map_lookup_elem(&BVCNI_MAP_NAT, &rkey);
		if (nat_held_by(re, f, now)) {
			nat_touch_egress(re, f, now);
			return rkey.dport;
		}
	}

	nat_key_of(f, NAT_DIR_EGRESS, &fkey);
	*fe = bpf_map_lookup_elem(&BVCNI_MAP_NAT, &fkey);
	if (!*fe || (*fe)->to_addr != cfg->node_ip)
		return 0;
	/* The reverse entry is the reservation, the EGRESS entry only says where to look. */
	port = (*fe)->to_port;
	rkey.dport = port;
	re = bpf_map_lookup_elem(&BVCNI_MAP_NAT, &rkey);
	if (!nat_held_by(re, f, now))
		return 0;
	nat_touch_egress(re, f, now);
	(*fe)->last_seen_ns = now;
	return port;
}

/* Reserves rkey for flow f: takes the entry re over, or inserts rval where there is none. */
static __always_inline int nat_take(const struct nat_key *rkey, struct nat_entry *re, const struct nat_flow *f,
				    __u64 now, const struct nat_entry *rval, int *inserted)
{
	if (re)
		return nat_claim(re, f, now, rval->tcp_state);
	/* Looked up first: a failed BPF_NOEXIST insert costs an LRU pop and push too. */
	if (bpf_map_update_elem(&BVCNI_MAP_NAT, rkey, rval, BPF_NOEXIST) != 0)
		return 0;
	*inserted = 1;
	return 1;
}

/*
 * Create a mapping for flow f: reserve the first free port of its probe
 * sequence, then point f's EGRESS entry (fe, when nat_egress_lookup found
 * one) at it. TC_ACT_OK with *port, or DROP(reason).
 */
static __always_inline int nat_egress_create(const struct bvcni_config *cfg, const struct nat_flow *f, __u64 now,
					     struct nat_entry *fe, __u16 *port)
{
	struct nat_key fkey = {}, rkey = {};
	struct nat_entry fval = {}, rval = {};
	__u32 min = cfg->nat_port_min, range = nat_port_range(cfg), i;
	__u16 cand = 0;
	int inserted = 0;

	if (!range)
		return DROP(REASON_DROP_NAT_NO_PORT);
	nat_rkey_of(f, cfg, &rkey);
	rval.created_ns = now;
	rval.last_seen_ns = now;
	rval.to_addr = f->saddr;
	rval.to_port = f->sport;
	rval.tcp_state = f->proto == IPPROTO_TCP ? nat_tcp_next(NAT_TCP_NONE, f->tcp_flags, 1) : NAT_TCP_NONE;
	for (i = 0; i < NAT_PORT_PROBES * NAT_PORT_RUN; i++) {
		struct nat_entry *re;

		rkey.dport = nat_candidate(f, min, range, i);
		re = bpf_map_lookup_elem(&BVCNI_MAP_NAT, &rkey);
		if (nat_take(&rkey, re, f, now, &rval, &inserted)) {
			cand = rkey.dport;
			break;
		}
	}
	if (!cand)
		return DROP(REASON_DROP_NAT_NO_PORT);

	/*
	 * Only this flow's own packets read its EGRESS entry: rewriting it in
	 * place races with nobody. Not after an insert, which may have evicted
	 * (and so recycled) the element fe points to.
	 */
	if (fe && !inserted) {
		fe->created_ns = now;
		fe->last_seen_ns = now;
		fe->to_addr = cfg->node_ip;
		fe->to_port = cand;
	} else {
		nat_key_of(f, NAT_DIR_EGRESS, &fkey);
		fval.created_ns = now;
		fval.last_seen_ns = now;
		fval.to_addr = cfg->node_ip;
		fval.to_port = cand;
		if (bpf_map_update_elem(&BVCNI_MAP_NAT, &fkey, &fval, BPF_ANY) != 0) {
			bpf_map_delete_elem(&BVCNI_MAP_NAT, &rkey);
			return DROP(REASON_DROP_NAT_FAILED);
		}
	}
	*port = cand;
	return TC_ACT_OK;
}

/*
 * Pod -> outside the cluster, in Cilium's three steps: find the flow's
 * mapping, else create one, then rewrite (the L4 checksum here, the address
 * and port by forward_write, from x). TC_ACT_OK with x filled in; with x
 * left empty (x->addr 0) for a packet of a flow the host translated, which
 * the host stack must see.
 */
static __always_inline int nat_egress(struct __sk_buff *skb, const struct bvcni_config *cfg, const struct iphdr *ip,
				      struct nat_xlate *x)
{
	struct nat_flow f = {};
	struct nat_entry *fe = 0;
	__u64 now = nat_now();
	__u16 port;
	int ret;

	if (ipv4_is_fragment(ip))
		return DROP(REASON_DROP_UNSUPPORTED);
	f.saddr = ip->saddr;
	f.daddr = ip->daddr;
	f.proto = ip->protocol;
	ret = nat_load_l4(skb, ETH_HLEN + ip->ihl * 4, &f, 1);
	if (ret)
		return ret;

	port = nat_egress_lookup(cfg, &f, now, &fe);
	if (!port) {
		/*
		 * With no mapping of ours, the packet may answer a connection the
		 * host translated (a NodePort with externalTrafficPolicy=Local):
		 * conntrack must see it. Asked only then: our own flows have their
		 * mapping. A bare SYN opens a connection and answers none, so new
		 * connections skip the lookup.
		 */
		if (!fe && !(f.proto == IPPROTO_TCP && (f.tcp_flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN) &&
		    ct_host_translated(skb, ip))
			return TC_ACT_OK;
		ret = nat_egress_create(cfg, &f, now, fe, &port);
		if (ret)
			return ret;
	}
	return nat_xlate_l4(skb, &f, 1, f.saddr, cfg->node_ip, f.sport, port, x);
}

/*
 * An ICMP error (destination unreachable, time exceeded) at the uplink that
 * quotes one of our masqueraded packets: translate the quoted header back
 * (source address, source port or echo id, its IP checksum and, for UDP, its
 * checksum), fix the ICMP checksum over the quoted bytes, and the outer
 * destination. Quoted headers with IP options are left alone. *pod_ip: the
 * pod it is for, stays 0 when the error is not ours.
 */
static __always_inline int nat_ingress_icmp_error(struct __sk_buff *skb, const struct bvcni_config *cfg,
						  __u32 l4off, __u32 *pod_ip)
{
	__u32 inner_off = l4off + 8;
	__u32 old[7], new[7];
	struct iphdr *in = (struct iphdr *)old;
	struct nat_key rkey = {};
	struct nat_entry *re;
	__u16 sport, dport, csum;
	__s64 diff;
	__u32 outer_old = cfg->node_ip;

	if (bpf_skb_load_bytes(skb, inner_off, old, sizeof(old)) < 0)
		return TC_ACT_OK;
	if (in->ihl != 5 || in->saddr != cfg->node_ip)
		return TC_ACT_OK;
	__builtin_memcpy(&sport, (__u8 *)old + 20, 2);
	__builtin_memcpy(&dport, (__u8 *)old + 22, 2);
	rkey.saddr = in->daddr;
	rkey.daddr = cfg->node_ip;
	rkey.proto = in->protocol;
	rkey.dir = NAT_DIR_INGRESS;
	if (in->protocol == IPPROTO_TCP || in->protocol == IPPROTO_UDP) {
		rkey.sport = dport;
		rkey.dport = sport;
	} else if (in->protocol == IPPROTO_ICMP && *((__u8 *)old + 20) == ICMP_ECHO) {
		__builtin_memcpy(&rkey.dport, (__u8 *)old + 24, 2);
	} else {
		return TC_ACT_OK;
	}
	re = bpf_map_lookup_elem(&BVCNI_MAP_NAT, &rkey);
	if (!re)
		return TC_ACT_OK;

	__builtin_memcpy(new, old, sizeof(new));
	in = (struct iphdr *)new;
	in->saddr = re->to_addr;
	in->check = 0;
	in->check = ipv4_csum20(new);
	if (rkey.proto == IPPROTO_ICMP) {
		__u8 *icmp = (__u8 *)new + 20;
		__u16 old_id;

		__builtin_memcpy(&old_id, icmp + 4, 2);
		__builtin_memcpy(&csum, icmp + 2, 2);
		csum = csum_replace2(csum, old_id, re->to_port);
		__builtin_memcpy(icmp + 2, &csum, 2);
		__builtin_memcpy(icmp + 4, &re->to_port, 2);
	} else {
		__u8 *l4 = (__u8 *)new + 20;

		__builtin_memcpy(l4, &re->to_port, 2);
		if (rkey.proto == IPPROTO_UDP) {
			__builtin_memcpy(&csum, l4 + 6, 2);
			if (csum) {
				csum = csum_replace4(csum, cfg->node_ip, re->to_addr);
				csum = csum_replace2(csum, sport, re->to_port);
				if (!csum)
					csum = 0xffff;
				__builtin_memcpy(l4 + 6, &csum, 2);
			}
		}
	}
	*pod_ip = re->to_addr;

	diff = bpf_csum_diff(old, sizeof(old), new, sizeof(new), 0);
	if (diff < 0)
		return DROP(REASON_DROP_NAT_FAILED);
	if (bpf_l4_csum_replace(skb, l4off + 2, 0, diff, 0) < 0)
		return DROP(REASON_DROP_NAT_FAILED);
	if (bpf_skb_store_bytes(skb, inner_off, new, sizeof(new), 0) < 0)
		return DROP(REASON_DROP_NAT_FAILED);
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, outer_old, *pod_ip, 4) < 0)
		return DROP(REASON_DROP_NAT_FAILED);
	if (bpf_skb_store_bytes(skb, IP_DST_OFF, pod_ip, 4, 0) < 0)
		return DROP(REASON_DROP_NAT_FAILED);
	return TC_ACT_OK;
}

/*
 * Uplink -> pod: a reply to a masqueraded flow gets its destination restored
 * (written by forward_write, from x). *pod_ip: the pod to deliver to, left 0
 * (as the caller set it) when the packet is not a reply of ours: the host's.
 */
static __always_inline int nat_ingress(struct __sk_buff *skb, const struct bvcni_config *cfg, const struct iphdr *ip,
				       __u32 *pod_ip, struct nat_xlate *x)
{
	struct nat_flow f = {};
	struct nat_key rkey = {};
	struct nat_entry *re;
	__u64 now;
	__u32 l4off;
	int ret;

	if (ip->daddr != cfg->node_ip || ipv4_is_fragment(ip))
		return TC_ACT_OK;
	f.saddr = ip->saddr;
	f.daddr = ip->daddr;
	f.proto = ip->protocol;
	l4off = ETH_HLEN + ip->ihl * 4;

	if (f.proto == IPPROTO_ICMP) {
		__u8 type;

		if (bpf_skb_load_bytes(skb, l4off, &type, 1) < 0)
			return TC_ACT_OK;
		if (type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED)
			return nat_ingress_icmp_error(skb, cfg, l4off, pod_ip);
		if (type != ICMP_ECHOREPLY)
			return TC_ACT_OK;
	} else if (f.proto != IPPROTO_TCP && f.proto != IPPROTO_UDP) {
		return TC_ACT_OK;
	}
	ret = nat_load_l4(skb, l4off, &f, 0);
	if (ret)
		return TC_ACT_OK; /* the host's own traffic is none of our business */
	if (!nat_port_in_range(cfg, f.dport))
		return TC_ACT_OK;

	nat_key_of(&f, NAT_DIR_INGRESS, &rkey);
	re = bpf_map_lookup_elem(&BVCNI_MAP_NAT, &rkey);
	now = nat_now();
	if (!re || nat_stale(re, f.proto, now))
		return TC_ACT_OK;
	re->last_seen_ns = now;
	if (f.proto == IPPROTO_TCP)
		re->tcp_state = nat_tcp_next(re->tcp_state, f.tcp_flags, 0);
	*pod_ip = re->to_addr;
	return nat_xlate_l4(skb, &f, 0, f.daddr, re->to_addr, f.dport, re->to_port, x);
}

#endif
