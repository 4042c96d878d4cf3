/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bpf_skb_adjust_room with the flags vxlan.h pushes VXLAN headers with, then
 * the strip. The flags are checked at run time (an unknown one is -EINVAL),
 * so this probe runs on a test packet. Without them bpf_pod and bpf_overlay
 * hand every packet to the VXLAN device instead (the "refused" path in
 * overlay_xmit.h): slower, still correct.
 */
#include "probe.h"
#include "vxlan.h"

SEC("tc")
int probe(struct __sk_buff *skb)
{
	if (bpf_skb_adjust_room(skb, VXLAN_ENCAP_LEN, BPF_ADJ_ROOM_MAC, VXLAN_ADJ_ROOM_FLAGS) < 0)
		return PROBE_NO;
	if (bpf_skb_adjust_room(skb, -(__s32)VXLAN_ENCAP_LEN, BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_FIXED_GSO) < 0)
		return PROBE_NO;
	return PROBE_YES;
}
