/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The ABI between the BPF programs and user space (bvcnid, the bvcni plugin,
 * bvcnictl). Every struct here is mirrored field by field in
 * src/dataplane/abi.ts; test/unit/abi.test.ts compares both against the BTF
 * that clang emits, so a change here that is not mirrored fails the tests.
 *
 * Rules: fixed-width types only, padding spelled out, addresses and ports in
 * network byte order unless a field says otherwise. Never renumber an enum
 * value: pinned maps outlive the programs that wrote them.
 */
#ifndef BVCNI_ABI_H
#define BVCNI_ABI_H

#include <linux/types.h>

/* Pinned map names (also the pin file names under the pin directory). */
#define BVCNI_MAP_TUNNEL    bvcni_tunnel
#define BVCNI_MAP_ENDPOINTS bvcni_endpoints
#define BVCNI_MAP_CONFIG    bvcni_config
#define BVCNI_MAP_NAT       bvcni_nat
#define BVCNI_MAP_STATS     bvcni_stats

#define BVCNI_TUNNEL_MAX    16384
#define BVCNI_ENDPOINTS_MAX 4096
#define BVCNI_NAT_MAX       262144

/* tunnel: LPM trie, remote podCIDR (or a remote node's own /32) -> remote node. */
struct tunnel_key {
	__u32 prefixlen;        /* host order, as the LPM trie requires */
	__u32 addr;             /* network order */
};

enum tunnel_flags {
	TUNNEL_F_NODE_IP = 1 << 0,  /* key is the remote node's own address (/32) */
};

struct tunnel_value {
	__u32 node_ip;          /* network order: the remote node's underlay address */
	__u32 flags;            /* enum tunnel_flags */
};

/* endpoints: hash, local pod IP -> where and how to deliver to it. Written by the plugin. */
struct endpoint_key {
	__u32 ip;               /* network order */
};

enum endpoint_flags {
	ENDPOINT_F_POD = 1 << 0,
};

struct endpoint_value {
	__u32 ifindex;          /* host-side veth, in the node's namespace */
	__u32 flags;            /* enum endpoint_flags */
	__u8  pod_mac[6];       /* MAC of the pod's interface */
	__u8  gw_mac[6];        /* MAC the pod sees as its gateway (the bridge) */
};

/* config: array with one element, written by bvcnid before programs run. */
struct bvcni_config {
	__u32 node_ip;          /* network order: this node's underlay address */
	__u32 pod_cidr;         /* network order */
	__u32 pod_prefix;       /* host order */
	__u32 cluster_cidr;     /* network order */
	__u32 cluster_prefix;   /* host order */
	__u32 vxlan_ifindex;
	__u32 uplink_ifindex;
	__u32 bridge_ifindex;
	__u32 vni;              /* host order */
	__u16 nat_port_min;     /* host order, inclusive */
	__u16 nat_port_max;     /* host order, inclusive */
	__u8  bridge_mac[6];
	__u8  uplink_mac[6];
	__u32 mtu;              /* pod MTU, host order */
	__u32 flags;            /* enum config_flags */
};

enum config_flags {
	CONFIG_F_READY      = 1 << 0,  /* the daemon finished writing this entry */
	CONFIG_F_MASQUERADE = 1 << 1,
};

/*
 * stats: per-CPU array indexed by (reason index * 2 + direction).
 * Reasons are stable: add at the end, never renumber.
 */
enum bvcni_reason {
	REASON_FORWARD          = 0,   /* not a drop: packets the programs forwarded */
	REASON_DROP_INVALID     = 1,   /* truncated or malformed header */
	REASON_DROP_SPOOFED     = 2,   /* pod sent with a source that is not its own */
	REASON_DROP_NO_TUNNEL   = 3,   /* cluster destination with no tunnel entry */
	REASON_DROP_NO_ENDPOINT = 4,   /* decapsulated for a local pod that is not registered */
	REASON_DROP_NO_CONFIG   = 5,   /* config map not written yet */
	REASON_DROP_NAT_NO_PORT = 6,   /* masquerade port range exhausted */
	REASON_DROP_NAT_FAILED  = 7,   /* NAT rewrite or map update failed */
	REASON_DROP_FIB         = 8,   /* no route out of the node */
	REASON_DROP_REDIRECT    = 9,   /* redirect helper failed */
	REASON_DROP_TTL         = 10,  /* TTL exceeded while forwarding */
	REASON_DROP_FRAG_NEEDED = 11,  /* too big for the overlay and DF set */
	REASON_DROP_UNSUPPORTED = 12,  /* protocol the NAT cannot translate */
	REASON_MAX              = 32,
};

enum bvcni_dir {
	DIR_INGRESS = 0,
	DIR_EGRESS  = 1,
};

struct stats_value {
	__u64 packets;
	__u64 bytes;
};

#endif /* BVCNI_ABI_H */
