/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef BVCNI_IPV4_H
#define BVCNI_IPV4_H

#include "common.h"

/* TCP header flag bits (byte 13), for the NAT's and policy's connection tracking. */
#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

/* addr and net in network order, prefix in host order. */
static __always_inline int ipv4_in_prefix(__u32 addr, __u32 net, __u32 prefix)
{
	__u32 mask;

	if (prefix == 0)
		return 1;
	if (prefix > 32)
		return 0;
	mask = bpf_htonl(~0U << (32 - prefix));
	return (addr & mask) == (net & mask);
}

static __always_inline int ipv4_is_fragment(const struct iphdr *ip)
{
	return (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) != 0;
}

/* Full header checksum of a 20-byte header given as 5 words (csum field zeroed by the caller). */
static __always_inline __u16 ipv4_csum20(const __u32 *w)
{
	__u64 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < 5; i++)
		sum += (w[i] & 0xffff) + (w[i] >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

#endif
