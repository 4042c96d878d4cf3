/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The one place verdicts are counted and turned into TC return codes. */
#ifndef BVCNI_METRICS_H
#define BVCNI_METRICS_H

#include "maps.h"

static __always_inline void stats_count(__u32 reason, __u32 dir, __u32 bytes)
{
	__u32 idx = reason * 2 + dir;
	struct stats_value *v;

	if (reason >= REASON_MAX)
		idx = REASON_DROP_INVALID * 2 + dir;
	v = bpf_map_lookup_elem(&BVCNI_MAP_STATS, &idx);
	if (v) {
		/* Per-CPU slots: no atomics needed. */
		v->packets += 1;
		v->bytes += bytes;
	}
}

#include "monitor.h"

/*
 * Every entry program ends here: drops are counted by reason (and described
 * to a listening `bvcnictl monitor`), the rest as FORWARD. hook: enum
 * bvcni_hook, the program's place; rule_ref: the policy rule behind a policy
 * drop, 0 when unknown (verdict()).
 */
static __always_inline int verdict_ref(struct __sk_buff *skb, int ret, __u32 dir, __u32 hook, __u32 rule_ref)
{
	if (IS_DROP(ret)) {
		stats_count(DROP_REASON(ret), dir, skb->len);
#ifdef BVCNI_MONITOR
		monitor_drop(skb, DROP_REASON(ret), dir, hook, rule_ref);
#endif
		return TC_ACT_SHOT;
	}
	stats_count(REASON_FORWARD, dir, skb->len);
	return ret;
}

static __always_inline int verdict(struct __sk_buff *skb, int ret, __u32 dir, __u32 hook)
{
	return verdict_ref(skb, ret, dir, hook, 0);
}

#endif
