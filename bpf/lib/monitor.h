/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Drop events for `bvcnictl monitor`: every drop verdict() counts may also
 * be described in the bvcni_events ring buffer.
 *
 * Cost: forwarded packets never come here. A drop with nobody listening
 * costs one array lookup and a clock read (the lease in bvcni_monitor). While
 * someone listens, each CPU spends tokens of its own bucket (no atomics, no
 * shared cache line between CPUs) and only a drop that gets a token touches
 * the ring buffer, whose reservation takes a lock all CPUs share: a flood
 * of drops is reduced to `rate` events per second per CPU before it can
 * contend there, and what the bucket refused is counted, not lost silently.
 *
 * The event is built in monitor_drop(), a global function: the verifier
 * checks it once, on its own, instead of once per drop site of the caller
 * (bpf_pod's drop sites are many and its verification is near the limit).
 *
 * -DBVCNI_NO_MONITOR leaves all of it out (the benchmark's baseline); so does
 * the ABI 1 build, whose maps have no ring buffer.
 */
#ifndef BVCNI_MONITOR_H
#define BVCNI_MONITOR_H

/* Included by metrics.h, after stats_count(), which it uses. */
#include "maps.h"

#if BVCNI_ABI_VERSION >= 2 && !defined(BVCNI_NO_MONITOR)
#define BVCNI_MONITOR 1

#define MONITOR_NSEC 1000000000ULL
/* Longer idle gaps refill no further than this: keeps elapsed * rate inside 64 bits for any u32 rate. */
#define MONITOR_MAX_REFILL_NS (4ULL * MONITOR_NSEC)

/* Byte offsets of what the event reads, from the start of the Ethernet frame. */
#define ARP_OP_OFF   (ETH_HLEN + 6)
#define ARP_SPA_OFF  (ETH_HLEN + 14)
#define ARP_TPA_OFF  (ETH_HLEN + 24)

/* 1 when this CPU's bucket has a token for one more event (and spends it). */
static __always_inline int monitor_take_token(const struct monitor_config *mc, __u64 now)
{
	__u32 zero = 0;
	struct monitor_bucket *b = bpf_map_lookup_elem(&BVCNI_MAP_MONITOR_BUCKET, &zero);
	__u64 cap, elapsed;

	if (!b)
		return 0;
	cap = (__u64)mc->burst * MONITOR_NSEC;
	if (!b->last_ns) {
		b->tokens = cap;
	} else {
		elapsed = now - b->last_ns;
		if (elapsed > MONITOR_MAX_REFILL_NS)
			elapsed = MONITOR_MAX_REFILL_NS;
		b->tokens += elapsed * mc->rate;
		if (b->tokens > cap)
			b->tokens = cap;
	}
	b->last_ns = now;
	if (b->tokens < MONITOR_NSEC)
		return 0;
	b->tokens -= MONITOR_NSEC;
	return 1;
}

/*
 * Fills what the frame tells; fields it is too short for stay 0 (the flags
 * say which were read). Not inlined so that struct drop_event reaches the
 * object's BTF through its signature (user space checks its codec there).
 */
static __attribute__((noinline)) void monitor_read_packet(struct __sk_buff *skb, struct drop_event *ev)
{
	struct iphdr ip;
	__u16 ports[2];
	__u8 icmp[2];

	if (bpf_skb_load_bytes(skb, offsetof(struct ethhdr, h_proto), &ev->ethertype, sizeof(ev->ethertype)) < 0)
		return;
	if (ev->ethertype == bpf_htons(ETH_P_ARP)) {
		if (bpf_skb_load_bytes(skb, ARP_OP_OFF, &ev->sport, sizeof(ev->sport)) < 0 ||
		    bpf_skb_load_bytes(skb, ARP_SPA_OFF, &ev->saddr, sizeof(ev->saddr)) < 0 ||
		    bpf_skb_load_bytes(skb, ARP_TPA_OFF, &ev->daddr, sizeof(ev->daddr)) < 0)
			return;
		ev->flags = EVENT_F_ARP;
		return;
	}
	if (ev->ethertype != bpf_htons(ETH_P_IP) || bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return;
	ev->saddr = ip.saddr;
	ev->daddr = ip.daddr;
	ev->proto = ip.protocol;
	ev->flags = EVENT_F_IPV4;
	/* A later fragment has no L4 header. */
	if (ip.frag_off & bpf_htons(0x1fff))
		return;
	switch (ip.protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		if (bpf_skb_load_bytes(skb, ETH_HLEN + ip.ihl * 4, ports, sizeof(ports)) < 0)
			return;
		ev->sport = ports[0];
		ev->dport = ports[1];
		ev->flags |= EVENT_F_PORTS;
		return;
	case IPPROTO_ICMP:
		if (bpf_skb_load_bytes(skb, ETH_HLEN + ip.ihl * 4, icmp, sizeof(icmp)) < 0)
			return;
		ev->sport = bpf_htons(icmp[0]);
		ev->dport = bpf_htons(icmp[1]);
		ev->flags |= EVENT_F_PORTS;
		return;
	}
}

/*
 * Global and not inlined on purpose (see the top). Returns 1 when an event
 * was submitted, 0 otherwise; the caller ignores it (a drop is a drop).
 */
__attribute__((noinline)) int monitor_drop(struct __sk_buff *skb, __u32 reason, __u32 dir, __u32 hook, __u32 rule_ref)
{
	__u32 zero = 0;
	const struct monitor_config *mc = bpf_map_lookup_elem(&BVCNI_MAP_MONITOR, &zero);
	struct drop_event *ev;
	__u64 now;

	if (!skb || !mc || !mc->listen_until_ns)
		return 0;
	now = bpf_ktime_get_ns();
	if (now > mc->listen_until_ns)
		return 0;
	if (!monitor_take_token(mc, now)) {
		stats_count(REASON_MONITOR_SUPPRESSED, dir & 1, skb->len);
		return 0;
	}
	ev = bpf_ringbuf_reserve(&BVCNI_MAP_EVENTS, sizeof(*ev), 0);
	if (!ev) {
		stats_count(REASON_MONITOR_LOST, dir & 1, skb->len);
		return 0;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->ktime_ns = now;
	ev->ifindex = skb->ifindex;
	ev->len = skb->len;
	ev->reason = reason;
	ev->dir = dir;
	ev->hook = hook;
	ev->rule_ref = rule_ref;
	monitor_read_packet(skb, ev);
	/* The reader polls: a wake-up per event would only cost the dropping CPU an irq_work. */
	bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
	return 1;
}

#endif /* BVCNI_ABI_VERSION >= 2 && !BVCNI_NO_MONITOR */

#endif
