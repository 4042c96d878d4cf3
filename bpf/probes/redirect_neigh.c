/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bpf_redirect_neigh with a next hop (5.11). Mainline 5.10 has the helper
 * with two arguments only: its verifier accepts this call, and at run time
 * the pointer lands in "flags" and the helper says TC_ACT_SHOT. So this
 * probe runs: TC_ACT_REDIRECT is the only yes. (Debian 11's 5.10 answers
 * yes, measured.)
 */
#include "probe.h"

SEC("tc")
int probe(struct __sk_buff *skb)
{
	struct bpf_redir_neigh nh = { .nh_family = AF_INET, .ipv4_nh = bpf_htonl(0xc0000201) };

	return bpf_redirect_neigh(skb->ifindex, &nh, sizeof(nh), 0) == TC_ACT_REDIRECT ? PROBE_YES : PROBE_NO;
}
