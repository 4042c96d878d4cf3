/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* bpf_redirect_peer: how decapsulated packets enter a pod (5.10). */
#include "probe.h"

SEC("tc")
int probe(struct __sk_buff *skb)
{
	return bpf_redirect_peer(skb->ifindex, 0);
}
