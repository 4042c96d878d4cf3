/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* An LPM trie as the tunnel map declares it (no preallocation, which LPM tries require). */
#include "probe.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct tunnel_key);
	__type(value, struct tunnel_value);
	__uint(max_entries, 16);
} probe_lpm SEC(".maps");

SEC("tc")
int probe(struct __sk_buff *skb)
{
	struct tunnel_key k = { .prefixlen = 32 };

	return bpf_map_lookup_elem(&probe_lpm, &k) ? TC_ACT_SHOT : TC_ACT_OK;
}
