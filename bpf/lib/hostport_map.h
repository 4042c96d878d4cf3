/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The hostPort map's lookup, shared by the tc programs (lib/hostport.h) and
 * the node's socket program (bpf_sock.c), which include nothing else of each
 * other's.
 */
#ifndef BVCNI_HOSTPORT_MAP_H
#define BVCNI_HOSTPORT_MAP_H

#include "maps.h"

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

/*
 * The mapping for daddr:port: an exact (host IP) mapping first, then, for
 * the node IP, the 0.0.0.0 one. *key_ip: the key that matched.
 */
static __always_inline const struct hostport_value *hostport_lookup(const struct bvcni_config *cfg, __u32 daddr,
								     __u16 port, __u8 proto, __u32 *key_ip)
{
	struct hostport_key k = { .host_ip = daddr, .port = port, .proto = proto };
	const struct hostport_value *v = bpf_map_lookup_elem(&BVCNI_MAP_HOSTPORT, &k);

	if (v || daddr != cfg->node_ip) {
		*key_ip = daddr;
		return v;
	}
	k.host_ip = 0;
	*key_ip = 0;
	return bpf_map_lookup_elem(&BVCNI_MAP_HOSTPORT, &k);
}

#endif
