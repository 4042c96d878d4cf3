// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The node's own processes reaching a hostPort: attached to the cgroup v2
 * root (cgroup/connect4), it rewrites the destination of a socket of the
 * node's network namespace that connects to <node address>:<hostPort> or
 * 127.0.0.1:<hostPort> to the pod's address and containerPort, before the
 * kernel routes anything. Their packets never leave the host stack (they go
 * over loopback), so no tc program meets them, and translating each packet
 * on loopback would need a reverse path the host accepts; a socket that
 * talks to the pod directly needs none, and costs nothing per packet. The
 * pod sees the node's address as the client. TCP and connected UDP (a UDP
 * socket that sends with sendto() without connect() is not translated).
 *
 * The cgroup root holds every process of the machine: pods' sockets (their
 * own namespaces, translated by the tc programs instead) and, where several
 * simulated nodes share one machine, other nodes'. So the program acts only
 * for sockets in the namespace whose cookie bvcnid wrote into sock_node_netns.
 * Its own object: one object per attach point.
 */
#include "lib/common.h"
#include "lib/maps.h"

#if BVCNI_ABI_VERSION < 2
#error "bpf_sock.c serves ABI 2's hostPort maps: the ABI 1 build (Makefile, BPF_ABI1_SRC) leaves it out"
#endif
#include "lib/hostport_map.h"

/* This node's network namespace cookie (bpf_get_netns_cookie), written by bvcnid; 0: act for none. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} sock_node_netns SEC(".maps");

#define LOOPBACK_NET 0x7f000000U /* 127.0.0.0/8, host order */

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	const struct bvcni_config *cfg;
	const struct hostport_value *hp;
	__u32 zero = 0, daddr, key_ip;
	__u64 *cookie;
	__u8 proto;

	cookie = bpf_map_lookup_elem(&sock_node_netns, &zero);
	if (!cookie || !*cookie || bpf_get_netns_cookie(ctx) != *cookie)
		return 1;
	proto = ctx->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	cfg = config_get();
	if (!cfg)
		return 1;
	daddr = ctx->user_ip4;
	/* 127.0.0.1:<hostPort> means what <node IP>:<hostPort> means, as a 0.0.0.0 mapping does. */
	if ((bpf_ntohl(daddr) & 0xff000000U) == LOOPBACK_NET)
		daddr = cfg->node_ip;
	hp = hostport_lookup(cfg, daddr, (__u16)ctx->user_port, proto, &key_ip);
	/* No pod behind it (yet): the host answers, as for a port nobody maps. */
	if (!hp || !endpoint_get(hp->pod_ip))
		return 1;
	ctx->user_ip4 = hp->pod_ip;
	ctx->user_port = hp->pod_port;
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
