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

/*
 * The dataplane ABI version: the layout of every pinned map (type, key and
 * value structs, sizes, flags) and the programs' contract with them. Bump it
 * with any such change, and record the new layout in
 * test/fixtures/abi/layouts.json: test/unit/abi-version.test.ts fails when
 * the compiled layout differs from the one recorded for this number.
 * Version 1 is v0.1.0's. Version 2: REASON_MAX 32 -> 64 (the stats map has
 * 128 slots), endpoint_value.identity, and the hostPort maps (bvcni_hostport,
 * bvcni_hostport_flows) with ENDPOINT_F_HOSTPORT. bvcnid migrates pinned maps
 * of another version in place at start-up (src/dataplane/migrate.ts, which
 * holds the conversions between versions).
 *
 * BVCNI_ABI_COMPAT=1 (make: dist/bpf/abi1/) compiles this release's programs
 * against version 1's layouts, for `bvcnid --prepare-downgrade`: the node's
 * maps go back to v0.1.0's layouts, which v0.1.0 then adopts in place.
 */
#ifndef BVCNI_ABI_COMPAT
#define BVCNI_ABI_VERSION 2
#else
#define BVCNI_ABI_VERSION BVCNI_ABI_COMPAT
#endif

/* Pinned map names (also the pin file names under the pin directory). */
#define BVCNI_MAP_TUNNEL    bvcni_tunnel
#define BVCNI_MAP_ENDPOINTS bvcni_endpoints
#define BVCNI_MAP_CONFIG    bvcni_config
#define BVCNI_MAP_NAT       bvcni_nat
#define BVCNI_MAP_STATS     bvcni_stats
#define BVCNI_MAP_HOSTPORT  bvcni_hostport
#define BVCNI_MAP_HOSTPORT_FLOWS bvcni_hostport_flows
#define BVCNI_MAP_IPCACHE   bvcni_ipcache
#define BVCNI_MAP_POLICY    bvcni_policy
#define BVCNI_MAP_POD_CT    bvcni_pod_ct
#define BVCNI_MAP_EVENTS    bvcni_events
#define BVCNI_MAP_MONITOR   bvcni_monitor
#define BVCNI_MAP_MONITOR_BUCKET bvcni_monitor_bucket

#define BVCNI_TUNNEL_MAX    16384
#define BVCNI_ENDPOINTS_MAX 4096
#define BVCNI_NAT_MAX       262144
#define BVCNI_HOSTPORT_MAX  8192
#define BVCNI_HOSTPORT_FLOWS_MAX 65536
#define BVCNI_IPCACHE_MAX   262144
#define BVCNI_POLICY_MAX    262144
#define BVCNI_POD_CT_MAX    131072
#define BVCNI_EVENTS_BYTES  (256 * 1024)  /* ring buffer size: a power of two, a multiple of the page size */

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
	ENDPOINT_F_POD    = 1 << 0,
	/*
	 * The pod's interface is the peer of a netkit pair (Linux 6.7), ifindex
	 * its primary: bpf_pod runs in the pair's transmit path, not at a tc
	 * ingress, so it delivers to local pods with bpf_redirect (deliver.h).
	 */
	ENDPOINT_F_NETKIT = 1 << 1,
	ENDPOINT_F_HOSTPORT = 1 << 2,  /* the pod owns hostPort mappings: its replies may need translating back */
	/*
	 * NetworkPolicy (ABI 2, lib/policy.h). Isolated in a direction: only
	 * what bvcni_policy allows for the endpoint passes there. Either flag
	 * (or PENDING) makes the pod's flows tracked in bvcni_pod_ct, both ways,
	 * so replies pass; an endpoint with none pays one flag test.
	 */
	ENDPOINT_F_INGRESS_ISOLATED = 1 << 3,
	ENDPOINT_F_EGRESS_ISOLATED  = 1 << 4,
	/* Labels not known yet while enforcement is on: fail closed, only the node's own traffic passes. */
	ENDPOINT_F_POLICY_PENDING   = 1 << 5,
};

struct endpoint_value {
	__u32 ifindex;          /* host side of the pod's pair (veth, or netkit primary), in the node's namespace */
	__u32 flags;            /* enum endpoint_flags */
	__u8  pod_mac[6];       /* MAC of the pod's interface */
	__u8  gw_mac[6];        /* MAC the pod sees as its gateway (the bridge) */
#if BVCNI_ABI_VERSION >= 2
	/*
	 * NetworkPolicy's security identity of the pod; 0 = not yet known. Room
	 * made now so the policy work needs no second layout change: nothing
	 * reads it yet beyond bvcnictl. At offset 20, already 4-aligned: the
	 * struct stays 24 bytes with no implicit padding.
	 */
	__u32 identity;
#endif
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
	__u32 service_cidr;     /* network order: ClusterIPs, handed to the host stack (kube-proxy) */
	__u32 service_prefix;   /* host order; 0: no service range */
	__u16 vxlan_port;       /* host order: the VXLAN device's UDP port, decapsulated at the uplink */
	__u16 pad;
};

enum config_flags {
	CONFIG_F_READY      = 1 << 0,  /* the daemon finished writing this entry */
	CONFIG_F_MASQUERADE = 1 << 1,
};

/*
 * stats: per-CPU array indexed by (reason index * 2 + direction).
 * Reasons are stable: add at the end, never renumber.
 */
#define BVCNI_REASON_MAX_V1 32  /* ABI 1's REASON_MAX (v0.1.0) */

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
	REASON_DROP_POD_VXLAN   = 13,  /* a pod sent UDP to the VXLAN port of a node, or of anything but a pod (encapsulation is the node's) */
	REASON_DROP_VXLAN_NOT_NODE = 14, /* VXLAN from an underlay host that is not a cluster node */
	REASON_DROP_VXLAN_SPOOFED  = 15, /* VXLAN from a node whose inner source is neither its podCIDR nor its IP */
	REASON_DROP_SPOOFED_MAC = 16,  /* pod frame with a source MAC that is not the pod's */
	REASON_DROP_ETHERTYPE   = 17,  /* pod frame that is neither IPv4 nor ARP (IPv6, VLAN tags, the rest) */
	REASON_DROP_ARP_SPOOFED = 18,  /* pod ARP whose sender IP or MAC is not the pod's own */
	REASON_DROP_HOSTPORT_NO_POD = 19, /* for a mapped hostPort whose pod has no endpoint entry (deleted, or not yet registered) */
	REASON_DROP_HOSTPORT_FAILED = 20, /* hostPort translation failed: a fragment, a port rewrite SCTP cannot take, a rewrite or flow-map write that failed */
	REASON_DROP_POLICY_INGRESS  = 21, /* NetworkPolicy: a new flow the destination pod's ingress rules do not allow */
	REASON_DROP_POLICY_EGRESS   = 22, /* NetworkPolicy: a new flow the source pod's egress rules do not allow */
	REASON_DROP_POLICY_PENDING  = 23, /* NetworkPolicy: the pod's labels are not known yet; only the node's own traffic passes */
	REASON_DROP_POLICY_FRAGMENT = 24, /* NetworkPolicy: a non-first fragment (no ports) that no rule allows for every port of its protocol */
	REASON_DROP_POLICY_CT       = 25, /* NetworkPolicy: an allowed new flow whose pod conntrack entry could not be written */
	REASON_DROP_VXLAN_VNI       = 26, /* VXLAN from a node with another VNI than this node's (--vni must be the same on every node) */
	/*
	 * 27..29 are no drops: what became of a drop's event while a
	 * `bvcnictl monitor` listened (the packet itself is counted under its
	 * drop reason as well). Without a listener neither is counted.
	 */
	REASON_MONITOR_SUPPRESSED = 27, /* drop event not emitted: this CPU's token bucket was empty (lib/monitor.h) */
	REASON_MONITOR_LOST     = 28,  /* drop event not emitted: the ring buffer was full (the reader fell behind) */
#if BVCNI_ABI_VERSION >= 2
	REASON_MAX              = 64,  /* ABI 2: room for hostPort and NetworkPolicy reasons */
#else
	REASON_MAX              = BVCNI_REASON_MAX_V1,
#endif
};

enum bvcni_dir {
	DIR_INGRESS = 0,
	DIR_EGRESS  = 1,
};

struct stats_value {
	__u64 packets;
	__u64 bytes;
};

/*
 * nat: LRU hash holding both directions of every masqueraded flow.
 *
 *  dir EGRESS  key = the pod's tuple (pod ip, remote ip, pod port, remote port)
 *              -> the translated source (node ip, nat port).
 *  dir INGRESS key = the reply as it arrives at the uplink
 *              (remote ip, node ip, remote port, nat port) -> (pod ip, pod port).
 *
 * ICMP echo uses the identifier as the pod-side port: a request is keyed
 * (sport = id, dport = 0), a reply (sport = 0, dport = id).
 * The INGRESS entry is the authoritative one: inserting it with BPF_NOEXIST, or
 * taking a reusable one over with a compare-and-swap of its created_ns, is
 * what reserves (node ip, nat port, proto, remote ip, remote port), so two pods
 * never share a tuple. Both directions refresh its last_seen_ns and its
 * tcp_state. A flow sits on the first port of its probe sequence unless that
 * was taken when it started: the programs then find its reservation without
 * the EGRESS entry, and read (and refresh) the EGRESS entry only for the
 * other flows; it is written for every flow all the same. An entry idle for
 * longer than its NAT_TIMEOUT_* is stale (an EGRESS entry: when its
 * reservation is, or is gone or another flow's): the programs treat it as
 * absent (and may reuse its port); the daemon may delete stale entries; the
 * LRU eviction is only the safety net.
 */
struct nat_key {
	__u32 saddr;            /* network order */
	__u32 daddr;            /* network order */
	__u16 sport;            /* network order */
	__u16 dport;            /* network order */
	__u8  proto;            /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP */
	__u8  dir;              /* enum nat_dir */
	__u8  pad[2];
};

enum nat_dir {
	NAT_DIR_EGRESS  = 0,
	NAT_DIR_INGRESS = 1,
};

struct nat_entry {
	__u64 created_ns;       /* bpf_ktime_get_coarse_ns(): CLOCK_MONOTONIC at tick resolution */
	__u64 last_seen_ns;     /* the same clock, at the last packet */
	__u32 to_addr;          /* network order: EGRESS -> node ip, INGRESS -> pod ip */
	__u16 to_port;          /* network order: EGRESS -> nat port, INGRESS -> pod port */
	__u8  tcp_state;        /* enum nat_tcp_state (meaningful in INGRESS entries) */
	__u8  flags;
};

enum nat_tcp_state {
	NAT_TCP_NONE        = 0,  /* not TCP */
	NAT_TCP_SYN         = 1,  /* SYN seen from the pod, no reply yet */
	NAT_TCP_ESTABLISHED = 2,  /* the remote answered */
	NAT_TCP_FIN         = 3,  /* the remote sent the first FIN: it will hold TIME_WAIT */
	NAT_TCP_CLOSED      = 4,  /* RST, or closed by the pod first and fully acknowledged */
	NAT_TCP_FIN_POD     = 5,  /* the pod sent the first FIN */
	NAT_TCP_LAST_ACK    = 6,  /* pod closed first, the remote's FIN seen, the pod's last ACK not yet */
	NAT_TCP_TIME_WAIT   = 7,  /* remote closed first and both FINs seen: the remote is in TIME_WAIT */
};

/*
 * Idle time after which an entry is stale, by protocol and TCP state (ns).
 *
 * Port reuse: a CLOSED mapping may be handed to a new flow at once. It is
 * CLOSED only when the remote holds no state for the tuple: after a RST, or
 * when the pod closed first (the pod, not the remote, then sits in TIME_WAIT,
 * on its own address and port) and its last ACK went out. When the remote
 * closed first it sits in TIME_WAIT for 60 s (Linux's TCP_TIMEWAIT_LEN) and a
 * new SYN on the same tuple could be refused, so the port waits that long.
 */
#define NAT_SEC                  1000000000ULL
#define NAT_TIMEOUT_TCP_SYN      (60ULL * NAT_SEC)
#define NAT_TIMEOUT_TCP_EST      (7440ULL * NAT_SEC)
#define NAT_TIMEOUT_TCP_FIN      (120ULL * NAT_SEC)
#define NAT_TIMEOUT_TCP_CLOSED   (10ULL * NAT_SEC)
#define NAT_TIMEOUT_TCP_TIME_WAIT (60ULL * NAT_SEC)
#define NAT_TIMEOUT_UDP          (60ULL * NAT_SEC)
#define NAT_TIMEOUT_ICMP         (30ULL * NAT_SEC)
/*
 * Port allocation: NAT_PORT_PROBES hashed starting points, from each of which
 * NAT_PORT_RUN consecutive ports are tried, before REASON_DROP_NAT_NO_PORT.
 * Runs find the free ports of a nearly full range that random probes miss.
 */
#define NAT_PORT_PROBES          8
#define NAT_PORT_RUN             16

/*
 * hostport: hash, (host IP, hostPort, protocol) -> the pod behind it. Written
 * by the plugin at ADD (inserted with BPF_NOEXIST: the insert is the claim, so
 * two concurrent ADDs cannot both own a port), removed at DEL and GC by owner.
 * host_ip 0: the node IP (cfg->node_ip), the runtime's 0.0.0.0; a non-zero
 * host_ip matches packets for exactly that address (one of the node's).
 */
struct hostport_key {
	__u32 host_ip;          /* network order; 0 = the node IP */
	__u16 port;             /* network order: the hostPort */
	__u8  proto;            /* IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP */
	__u8  pad;
};

struct hostport_value {
	__u32 pod_ip;           /* network order */
	__u16 pod_port;         /* network order: the containerPort */
	__u16 pad;
	__u64 owner;            /* host order: the plugin's 64-bit hash of containerID "/" ifname (src/cni/hash.ts): who may delete it */
};

/*
 * hostport_flows: LRU hash, one entry per flow translated to a hostPort,
 * keyed by the pod's reply as it leaves the pod (pod ip, client ip, pod port,
 * client port) -> the address and port the client used. Written by the
 * programs at the first packet of a flow; the reply path takes it only while
 * the mapping it names still points at the pod, so a mapping deleted at DEL
 * stops translating at once. The LRU bounds it: no timers, no daemon GC.
 */
struct hostport_flow_key {
	__u32 pod_ip;           /* network order */
	__u32 client_ip;        /* network order */
	__u16 pod_port;         /* network order */
	__u16 client_port;      /* network order */
	__u8  proto;
	__u8  pad[3];
};

struct hostport_flow_value {
	__u32 host_ip;          /* network order: the destination the client used */
	__u32 key_ip;           /* network order: the mapping's key host_ip (0 for a node-IP mapping) */
	__u16 host_port;        /* network order */
	__u16 pad;
};

/*
 * ipcache: LPM trie, every pod address of the cluster (/32) and every
 * ipBlock prefix -> its NetworkPolicy identity (src/policy/compile.ts). An
 * address with no entry is the world (ID_WORLD). Written by bvcnid.
 */
struct ipcache_key {
	__u32 prefixlen;        /* host order, as the LPM trie requires */
	__u32 addr;             /* network order */
};

struct ipcache_value {
	__u32 identity;         /* host order */
};

/* Reserved identities, as the compiler numbers them. */
#define ID_ANY   0
#define ID_HOST  1
#define ID_WORLD 2

/*
 * policy: LPM trie of allow entries, per local endpoint and direction
 * (src/policy/layout.ts writes them). A lookup uses all 96 bits with the
 * packet's values; an entry covers a port range as a prefix, "every port"
 * by stopping before the port, "every protocol" before the protocol.
 */
struct policy_key {
	__u32 prefixlen;        /* host order: bits of what follows that must match */
	__u32 endpoint;         /* network order: the local pod's address */
	__u32 identity;         /* network order: the peer's identity (ID_ANY: every peer) */
	__u8  direction;        /* enum bvcni_dir: DIR_INGRESS, DIR_EGRESS */
	__u8  proto;
	__u16 dport;            /* network order */
};

struct policy_value {
	__u32 rule_ref;         /* host order: 0 unknown, else an index bvcnid maps to the allowing policy */
};

/*
 * pod_ct: LRU hash, the connection tracking NetworkPolicy needs (lib/policy.h),
 * one entry per flow and per side that tracks it: dir CT_EGRESS where an
 * isolated pod opened it, CT_INGRESS where an isolated pod accepted it; key
 * the flow's first packet (saddr the opener). ICMP echo: sport = id,
 * dport = 0. Only isolated endpoints write it.
 */
struct pod_ct_key {
	__u32 saddr;            /* network order */
	__u32 daddr;            /* network order */
	__u16 sport;            /* network order */
	__u16 dport;            /* network order */
	__u8  proto;
	__u8  dir;              /* enum bvcni_dir of the side that tracks it */
	__u8  pad[2];
};

enum pod_ct_flags {
	POD_CT_F_REPLY   = 1 << 0,  /* the other end answered */
	POD_CT_F_FIN_FWD = 1 << 1,  /* FIN from the opener */
	POD_CT_F_FIN_REV = 1 << 2,  /* FIN from the other end */
	POD_CT_F_RST     = 1 << 3,
};

struct pod_ct_value {
	__u64 last_seen_ns;     /* bpf_ktime_get_coarse_ns(), refreshed at most once a second */
	__u32 rule_ref;         /* host order: the allowing entry's, for the monitor */
	__u8  flags;            /* enum pod_ct_flags */
	__u8  pad[3];
};

/* Idle time after which a pod_ct entry is stale (ns); NAT_SEC is above. */
#define POD_CT_TIMEOUT_TCP_SYN    (60ULL * NAT_SEC)
#define POD_CT_TIMEOUT_TCP_EST    (21600ULL * NAT_SEC)
#define POD_CT_TIMEOUT_TCP_CLOSE  (10ULL * NAT_SEC)
#define POD_CT_TIMEOUT_UDP        (60ULL * NAT_SEC)
#define POD_CT_TIMEOUT_ICMP       (30ULL * NAT_SEC)
#define POD_CT_REFRESH_NS         (1ULL * NAT_SEC)

/*
 * events: ring buffer (ABI 2) of struct drop_event, one per drop, emitted
 * while a `bvcnictl monitor` holds the lease in bvcni_monitor and the CPU's
 * token bucket (bvcni_monitor_bucket) has a token. The reader polls: the
 * programs submit without a wake-up.
 */
enum bvcni_hook {
	HOOK_POD          = 0,  /* bpf_pod: what a pod sends (tc ingress of its host veth, or its netkit pair's transmit) */
	HOOK_UPLINK       = 1,  /* bpf_host: tc ingress of the uplink */
	HOOK_OVERLAY_IN   = 2,  /* bpf_overlay: tc ingress of the VXLAN device */
	HOOK_OVERLAY_OUT  = 3,  /* bpf_overlay: tc egress of the VXLAN device */
	HOOK_TO_POD       = 4,  /* bpf_to_pod: what the host sends a pod (tc egress of its host veth, its netkit pair's primary) */
};

enum drop_event_flags {
	EVENT_F_IPV4  = 1 << 0,  /* saddr, daddr, proto are the IPv4 header's */
	EVENT_F_PORTS = 1 << 1,  /* sport, dport read: TCP/UDP/SCTP ports; ICMP type and code */
	EVENT_F_ARP   = 1 << 2,  /* saddr, daddr are the ARP sender's and target's IP, sport the op */
};

struct drop_event {
	__u64 ktime_ns;         /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 ifindex;          /* skb->ifindex: the device the program ran on */
	__u32 len;              /* skb->len */
	__u16 reason;           /* enum bvcni_reason, host order */
	__u8  dir;              /* enum bvcni_dir */
	__u8  hook;             /* enum bvcni_hook */
	__u16 ethertype;        /* network order; 0 when the frame was too short */
	__u8  proto;            /* IPv4 protocol (EVENT_F_IPV4) */
	__u8  flags;            /* enum drop_event_flags */
	__u32 saddr;            /* network order */
	__u32 daddr;            /* network order */
	__u16 sport;            /* network order (ICMP: the type; ARP: the op) */
	__u16 dport;            /* network order (ICMP: the code) */
	__u32 rule_ref;         /* host order: the policy rule behind a policy drop; 0 = unknown */
};

/*
 * monitor: array, one element, written by `bvcnictl monitor` only. A lease
 * rather than a flag: a listener killed without cleaning up stops the events
 * by itself within a lease (the programs compare against the clock), so a
 * node no one watches builds none.
 */
struct monitor_config {
	__u64 listen_until_ns;  /* bpf_ktime_get_ns() at which the lease ends; 0: nobody listens */
	__u32 rate;             /* events per second refilled into each CPU's bucket (host order) */
	__u32 burst;            /* each CPU's bucket depth, in events (host order) */
	__u32 listener_pid;     /* the holder (a second listener refuses while it lives) */
	__u32 pad;
};

/*
 * monitor_bucket: per-CPU array, one element: the programs' own token bucket.
 * tokens counts in 1/1e9 of an event so a refill needs no division.
 * last_ns 0 (a listener's reset) refills it to burst at the next drop.
 */
struct monitor_bucket {
	__u64 tokens;
	__u64 last_ns;
};

#endif /* BVCNI_ABI_H */
