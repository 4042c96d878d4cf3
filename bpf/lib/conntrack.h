/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The host's connection tracker, asked through the bpf_skb_ct_lookup kfunc.
 *
 * Why: bvcni delivers packets past the host stack (bpf_redirect_peer). That
 * is only right for flows the host has not translated. A Service reply
 * (kube-proxy's DNAT), a NodePort reply with externalTrafficPolicy=Local, or
 * anything else iptables/nftables NATed must go up the stack so conntrack
 * undoes the translation; otherwise the pod sees the backend's address and
 * drops the reply.
 *
 * Two builds, because no single object loads everywhere (measured in the
 * kernel VMs, tools/kernels/): a weak kfunc tested with `if (!kfunc)` is an
 * ld_imm64 of the kfunc's address, which 6.1 and 6.12 reject for a kfunc that
 * lives in a module ("ldimm64 insn specifies invalid btf_id": Debian's
 * nf_conntrack is a module, loaded by kube-proxy), while an unresolved kfunc
 * that is called without that test is rejected by every kernel. So the
 * default build calls the kfuncs directly, and loads only where they
 * resolve (built in, or the module loaded); -DBVCNI_NO_CT (dist/bpf/noct/)
 * references no kfunc and answers "not translated". bvcnid loads the set the
 * ct_kfunc probe selects (src/dataplane/features.ts, programSet()), and the
 * choice costs the hot path nothing: no run-time test, no map lookup.
 */
#ifndef BVCNI_CONNTRACK_H
#define BVCNI_CONNTRACK_H

#include <bpf/bpf_core_read.h>
#include "common.h"
#include "ipv4.h"

/* The kernel's struct bpf_ct_opts, first 12 bytes (the size every kernel since 6.0 accepts). */
struct bvcni_ct_opts {
	__s32 netns_id;
	__s32 error;
	__u8  l4proto;
	__u8  dir;
	__u8  reserved[2];
};

/* Only the field we read, relocated against the running kernel's BTF (CO-RE). */
struct nf_conn {
	unsigned long status;
} __attribute__((preserve_access_index));

#ifndef BVCNI_NO_CT
/* Not weak: where they do not resolve libbpf says so by name, before the verifier. */
extern struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb, struct bpf_sock_tuple *tuple, __u32 tuple_sz,
					 struct bvcni_ct_opts *opts, __u32 opts_sz) __ksym;
extern void bpf_ct_release(struct nf_conn *ct) __ksym;
#endif

#define CT_CURRENT_NETNS (-1)
#define CT_IPS_SRC_NAT   (1UL << 4)
#define CT_IPS_DST_NAT   (1UL << 5)

/*
 * Whether the host NATed the flow this TCP or UDP packet belongs to (in
 * either direction), or may have: an IP fragment answers yes. Only the first
 * fragment carries ports, and only conntrack, which reassembles, can
 * translate a fragmented datagram back (a large UDP Service reply, a DNS
 * answer bigger than the MTU): delivered past the stack, its fragments would
 * reach the pod with the backend's address. So the callers hand every
 * fragment to the host stack, like the rest of a flow it may have
 * translated. l4off: where ip's ports are in the packet (past an outer header
 * when the packet is still encapsulated).
 */
#ifdef BVCNI_NO_CT
/*
 * No conntrack to ask: nothing on the node is known to translate, and a
 * fragment is delivered like the rest (what the default build did on a kernel
 * whose kfuncs did not resolve). Replies of flows kube-proxy NATed are then
 * delivered with the backend's address: the README's "Known limits".
 */
static __always_inline int ct_host_translated_at(struct __sk_buff *skb __attribute__((unused)),
						 const struct iphdr *ip __attribute__((unused)),
						 __u32 l4off __attribute__((unused)))
{
	return 0;
}
#else
static __always_inline int ct_host_translated_at(struct __sk_buff *skb, const struct iphdr *ip, __u32 l4off)
{
	struct bpf_sock_tuple tuple = {};
	struct bvcni_ct_opts opts = { .netns_id = CT_CURRENT_NETNS };
	struct nf_conn *ct;
	__u16 ports[2];
	unsigned long status;

	/*
	 * SCTP: conntrack tracks and NATs it (a ClusterIP Service of an SCTP
	 * port), but the kfunc takes TCP and UDP only, so it cannot be asked: a
	 * backend's reply that conntrack must un-DNAT looks like any other. Like a
	 * fragment, it goes up the stack, which undoes what it translated and
	 * routes the rest unchanged; ingress policy is bpf_to_pod's there.
	 */
	if (ip->protocol == IPPROTO_SCTP)
		return 1;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return 0;
	if (ipv4_is_fragment(ip))
		return 1;
	tuple.ipv4.saddr = ip->saddr;
	tuple.ipv4.daddr = ip->daddr;
	opts.l4proto = ip->protocol;
	if (bpf_skb_load_bytes(skb, l4off, ports, sizeof(ports)) < 0)
		return 0;
	tuple.ipv4.sport = ports[0];
	tuple.ipv4.dport = ports[1];
	ct = bpf_skb_ct_lookup(skb, &tuple, sizeof(tuple.ipv4), &opts, sizeof(opts));
	if (!ct)
		return 0;
	status = BPF_CORE_READ(ct, status);
	bpf_ct_release(ct);
	return (status & (CT_IPS_SRC_NAT | CT_IPS_DST_NAT)) != 0;
}
#endif

static __always_inline int ct_host_translated(struct __sk_buff *skb, const struct iphdr *ip)
{
	return ct_host_translated_at(skb, ip, ETH_HLEN + ip->ihl * 4);
}

#endif
