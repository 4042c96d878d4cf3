/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map, declared once. All are pinned by name so the three objects (and
 * a restarted bvcnid) share them through the pin directory.
 */
#ifndef BVCNI_MAPS_H
#define BVCNI_MAPS_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct tunnel_key);
	__type(value, struct tunnel_value);
	__uint(max_entries, BVCNI_TUNNEL_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} BVCNI_MAP_TUNNEL SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_value);
	__uint(max_entries, BVCNI_ENDPOINTS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} BVCNI_MAP_ENDPOINTS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct bvcni_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} BVCNI_MAP_CONFIG SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct nat_key);
	__type(value, struct nat_entry);
	__uint(max_entries, BVCNI_NAT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} BVCNI_MAP_NAT SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct stats_value);
	__uint(max_entries, REASON_MAX * 2);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} BVCNI_MAP_STATS SEC(".maps");

/* ABI 2's hostPort maps: the ABI 1 build declares v0.1.0's maps only (abi.h). */
#if BVCNI_ABI_VERSION >= 2
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct hostport_key);
	__type(value, struct hostport_value);
	__uint(max_entries, BVCNI_HOSTPORT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} BVCNI_MAP_HOSTPORT SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct hostport_flow_key);
	__type(value, struct hostport_flow_value);
	__uint(max_entries, BVCNI_HOSTPORT_FLOWS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} BVCNI_MAP_HOSTPORT_FLOWS SEC(".maps");

/* ABI 2's NetworkPolicy maps (abi.h, lib/policy.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
	__uint(max_entries, BVCNI_IPCACHE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} BVCNI_MAP_IPCACHE SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
	__uint(max_entries, BVCNI_POLICY_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} BVCNI_MAP_POLICY SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct pod_ct_key);
	__type(value, struct pod_ct_value);
	__uint(max_entries, BVCNI_POD_CT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} BVCNI_MAP_POD_CT SEC(".maps");
/* Drop events (lib/monitor.h). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, BVCNI_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} BVCNI_MAP_EVENTS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct monitor_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} BVCNI_MAP_MONITOR SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct monitor_bucket);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} BVCNI_MAP_MONITOR_BUCKET SEC(".maps");
#endif

/* A config the daemon has not finished writing is treated as absent. */
static __always_inline const struct bvcni_config *config_get(void)
{
	__u32 zero = 0;
	const struct bvcni_config *cfg = bpf_map_lookup_elem(&BVCNI_MAP_CONFIG, &zero);

	if (!cfg || !(cfg->flags & CONFIG_F_READY))
		return 0;
	return cfg;
}

static __always_inline const struct endpoint_value *endpoint_get(__u32 ip)
{
	struct endpoint_key key = { .ip = ip };

	return bpf_map_lookup_elem(&BVCNI_MAP_ENDPOINTS, &key);
}

static __always_inline const struct tunnel_value *tunnel_get(__u32 ip)
{
	struct tunnel_key key = { .prefixlen = 32, .addr = ip };

	return bpf_map_lookup_elem(&BVCNI_MAP_TUNNEL, &key);
}

#endif
