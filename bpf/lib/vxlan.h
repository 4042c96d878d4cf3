/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The VXLAN header and what an encapsulation adds, for both directions. */
#ifndef BVCNI_VXLAN_H
#define BVCNI_VXLAN_H

#include "common.h"

struct vxlan_hdr_min {
	__u8 flags;             /* 0x08: the VNI is valid */
	__u8 reserved1[3];
	__u8 vni[3];
	__u8 reserved2;
};
#define VXLAN_F_VNI 0x08

/* Outer IPv4 (no options) + UDP + VXLAN + inner Ethernet: what encapsulation adds. */
#define VXLAN_ENCAP_LEN (sizeof(struct iphdr) + sizeof(struct udphdr) + sizeof(struct vxlan_hdr_min) + ETH_HLEN)
#define VXLAN_INNER_IP_OFF (ETH_HLEN + VXLAN_ENCAP_LEN)

/* ECN bits of the IP TOS byte, which encapsulation carries across as the kernel's tunnels do. */
#define IP_ECN_MASK 0x3
#define IP_ECN_CE   0x3
#define IP_ECN_ECT0 0x2

#endif
