/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Incremental one's-complement updates (RFC 1624) for checksums we rewrite
 * ourselves in bytes the kernel helpers cannot reach (headers quoted inside an
 * ICMP error). Values are raw memory-order words: the sum is byte-order
 * independent as long as old, new and the checksum are read the same way.
 */
#ifndef BVCNI_CSUM_H
#define BVCNI_CSUM_H

#include "common.h"

static __always_inline __u16 csum_fold32(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

static __always_inline __u16 csum_replace4(__u16 check, __u32 old, __u32 new)
{
	__u32 s = (__u16)~check;

	s += (__u16)~(old & 0xffff);
	s += (__u16)~(old >> 16);
	s += new & 0xffff;
	s += new >> 16;
	return (__u16)~csum_fold32(s);
}

static __always_inline __u16 csum_replace2(__u16 check, __u16 old, __u16 new)
{
	__u32 s = (__u16)~check;

	s += (__u16)~old;
	s += new;
	return (__u16)~csum_fold32(s);
}

/* The checksum of an option-less IPv4 header whose check field is 0. */
static __always_inline __u16 ipv4_csum(const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 s = 0;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*ip) / 2); i++)
		s += w[i];
	return (__u16)~csum_fold32(s);
}

#endif
