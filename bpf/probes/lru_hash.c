/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* An LRU hash, as the NAT map is. */
#include "probe.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct nat_key);
	__type(value, struct nat_entry);
	__uint(max_entries, 16);
} probe_lru SEC(".maps");

SEC("tc")
int probe(struct __sk_buff *skb)
{
	struct nat_key k = {};

	return bpf_map_lookup_elem(&probe_lru, &k) ? TC_ACT_SHOT : TC_ACT_OK;
}
