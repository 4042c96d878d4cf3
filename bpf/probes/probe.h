/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Kernel feature probes (src/dataplane/features.ts). Each probes/<name>.c is
 * its own object with one program, "probe", so one missing feature fails one
 * load and names itself. Probes that only need the verifier's yes are loaded;
 * the ones whose answer is decided at run time (flags a kernel rejects with
 * -EINVAL, a kfunc libbpf could not resolve) are run once with
 * BPF_PROG_TEST_RUN and answer PROBE_YES or PROBE_NO.
 */
#ifndef BVCNI_PROBE_H
#define BVCNI_PROBE_H

#include "common.h"

#define PROBE_YES 1
#define PROBE_NO  2

char __license[] SEC("license") = "Dual BSD/GPL";

#endif
