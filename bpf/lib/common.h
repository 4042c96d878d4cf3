/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Includes and small definitions every program shares. */
#ifndef BVCNI_COMMON_H
#define BVCNI_COMMON_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "abi.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* <linux/icmp.h> pulls in glibc headers that do not build for BPF. */
struct icmphdr_min {
	__u8  type;
	__u8  code;
	__u16 checksum;
	__u16 id;       /* echo only */
	__u16 seq;      /* echo only */
};
#define ICMP_ECHOREPLY      0
#define ICMP_DEST_UNREACH   3
#define ICMP_ECHO           8
#define ICMP_TIME_EXCEEDED  11

#define IP_MF     0x2000
#define IP_OFFSET 0x1fff
#define IP_DF     0x4000

/* The helpers' address family (bpf_fib_lookup, bpf_redirect_neigh); not in the uapi headers. */
#ifndef AF_INET
#define AF_INET 2
#endif

#ifndef PACKET_HOST
#define PACKET_HOST 0
#endif

/*
 * Helpers return a TC verdict (>= 0) or a negative drop code DROP(reason).
 * Negative values never collide with TC_ACT_* (all >= -1; TC_ACT_UNSPEC is
 * never returned by a helper here).
 */
#define DROP(reason) (-(int)(reason) - 1000)
#define IS_DROP(ret)  ((ret) <= -1000)
#define DROP_REASON(ret) ((__u32)(-(ret) - 1000))

#define L3_OFF ETH_HLEN
#define IP_CSUM_OFF (L3_OFF + offsetof(struct iphdr, check))
#define IP_SRC_OFF  (L3_OFF + offsetof(struct iphdr, saddr))
#define IP_DST_OFF  (L3_OFF + offsetof(struct iphdr, daddr))
#define IP_TTL_OFF  (L3_OFF + offsetof(struct iphdr, ttl))

#ifndef offsetof
#define offsetof(t, m) __builtin_offsetof(t, m)
#endif

#endif
