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
#define ICMP_FRAG_NEEDED    4   /* a DEST_UNREACH code */
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
 * How helpers answer, everywhere (Cilium's convention: a TC verdict or a
 * negative drop reason, and the caller decides what the verdict means to it):
 *  - TC_ACT_OK (0): the helper is done and left the packet to its caller,
 *    which goes on with its next step. An entry program that ends with it
 *    hands the packet to the host stack, so a helper that finds the packet is
 *    none of its business answers TC_ACT_OK too.
 *  - TC_ACT_REDIRECT: the helper redirected the packet; the caller returns it.
 *  - DROP(reason): a drop, returned up unchanged and counted under reason by
 *    verdict() (lib/metrics.h) at the entry.
 * So after every call `if (ret) return ret;`: anything but TC_ACT_OK ends
 * the program. What else a helper has to tell (the translation it made, the
 * pod a reply is for, whether the next hop's MACs are known) goes in its
 * out-parameters, where 0 means "none": there are no private return codes.
 * Three kinds of helper are not verdicts: predicates answer 1 or 0 (one that
 * reads the packet to answer may also return DROP(reason) when it cannot, for
 * `if (ret <= 0) return ret;`); lookups return a pointer, or NULL with the
 * verdict in *ret; a wrapper of one kernel helper returns that helper's
 * result (< 0: failed).
 * DROP codes never collide with TC_ACT_* (all >= -1; TC_ACT_UNSPEC is never
 * returned by a helper here).
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
