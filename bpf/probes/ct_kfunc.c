/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The conntrack kfuncs, called as conntrack.h's default build calls them:
 * this loads exactly where the objects in dist/bpf/ load (the kfuncs resolve: conntrack
 * built in, or nf_conntrack's module loaded), and fails where bvcnid must load
 * the -DBVCNI_NO_CT set instead (src/dataplane/features.ts). Run once, so a
 * lookup that loads but cannot be called answers no too.
 */
#include "probe.h"
#include "conntrack.h"

SEC("tc")
int probe(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;

	if ((void *)(ip + 1) > data_end)
		return PROBE_NO;
	ct_host_translated(skb, ip);
	return PROBE_YES;
}
