/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The conntrack kfuncs, called as conntrack.h calls them. They are weak:
 * libbpf leaves them NULL when the kernel (or its nf_conntrack module, not
 * loaded yet) does not offer them, and the programs load anyway. So this
 * probe runs: PROBE_YES only when the lookup was resolved and callable.
 */
#include "probe.h"
#include "conntrack.h"

SEC("tc")
int probe(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;

	if (!bpf_skb_ct_lookup || !bpf_ct_release)
		return PROBE_NO;
	if ((void *)(ip + 1) > data_end)
		return PROBE_NO;
	ct_host_translated(skb, ip);
	return PROBE_YES;
}
