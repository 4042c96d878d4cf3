/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What every entry program starts with: the headers all of them need, and
 * entry_ipv4, the two things each must have before it can decide anything
 * (the packet's IPv4 header, the config). Each program then ends in
 * verdict() (lib/metrics.h).
 */
#ifndef BVCNI_ENTRY_H
#define BVCNI_ENTRY_H

#include "common.h"
#include "maps.h"
#include "metrics.h"
#include "eth.h"
#include "ipv4.h"

/*
 * The IPv4 header, with the config in *cfg; or NULL with the verdict in *ret:
 * TC_ACT_OK for a frame that is not IPv4, DROP(REASON_DROP_INVALID) for a
 * malformed header, DROP(REASON_DROP_NO_CONFIG) until bvcnid has written the
 * config (the uplink lets all three go to the host: they are its own).
 */
static __always_inline struct iphdr *entry_ipv4(struct __sk_buff *skb, const struct bvcni_config **cfg, int *ret)
{
	struct iphdr *ip = ipv4_hdr(skb, ret);

	if (!ip)
		return 0;
	*cfg = config_get();
	if (!*cfg) {
		*ret = DROP(REASON_DROP_NO_CONFIG);
		return 0;
	}
	return ip;
}

#endif
