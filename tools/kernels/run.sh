#!/usr/bin/env bash
# `make test-kernels`: boots each kernel in a VM (virtme-ng, software emulation)
# with this machine's root read-only and runs the chosen checks inside it on
# the built tree (dist/). Prints kernel, check, result and wall time; exits
# non-zero if anything failed. Timings inside TCG say nothing about bvcni's
# speed: only wall time is printed.
#
#   KERNELS="5.10 6.1 6.12"  (default: all, oldest first)
#   WHAT="features demo bpf floor"  (default: per kernel, see kernels.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tools/kernels
# shellcheck source=tools/kernels/kernels.sh
source "$here/kernels.sh"

read -r -a kernels <<< "${KERNELS:-$KERNELS_ALL}"
for k in "${kernels[@]}"; do kernel_suite "$k" >/dev/null; done
[[ -x dist/bin/bvcnid && -f dist/bpf/probes/base.o ]] || { echo "kernels: run make build first" >&2; exit 1; }
bash "$here/fetch.sh" "${kernels[@]}"

vroot=$KCACHE/virtme-ng/root
# One directory per run in the checkout (.tmp/ is gitignored): virtme-ng shares it
# with the guest writable, so logs and results come back through it.
runs=$PWD/.tmp/kernels
mkdir -p "$runs"
rows=()
failed=0
for k in "${kernels[@]}"; do
  what=${WHAT:-$(kernel_default_what "$k")}
  read -r -a whats <<< "$what"
  kdir=$KCACHE/kernels/$k
  release=$(cat "$kdir/release")
  out=$runs/$k-$(date +%Y%m%dT%H%M%S)
  mkdir -p "$out"
  echo "kernels: booting Linux $release (Debian $(kernel_suite "$k")) for: ${whats[*]}; logs in $out"
  start=$(date +%s)
  set +e
  PYTHONPATH=$vroot/usr/lib/python3/dist-packages timeout "${KERNEL_TIMEOUT:-3600}" "$vroot/usr/bin/virtme-run" \
    --kimg "$kdir/root/boot/vmlinuz-$release" --mods auto --memory 3G --cpus 2 --disable-kvm \
    --overlay-rwdir /tmp --overlay-rwdir /var --overlay-rwdir /etc --rwdir "/tmp/bvcni-out=$out" \
    --cwd "$PWD" --script-sh "bash $PWD/$here/guest.sh /tmp/bvcni-out ${whats[*]}" \
    < /dev/null > "$out/console.log" 2>&1
  vm_rc=$?
  set -e
  vm_time=$(( $(date +%s) - start ))
  for w in "${whats[@]}"; do
    line=$(grep "^$w " "$out/results" 2>/dev/null | tail -1 || true)
    if [[ -z $line ]]; then
      rows+=("$release|$w|fail (no result: VM exit $vm_rc, see $out)|-")
      failed=1
      continue
    fi
    read -r _ result secs <<< "$line"
    if [[ $result == refused ]] && kernel_below_floor "$k"; then
      result="refused, as it must"
    elif [[ $result != pass ]]; then
      failed=1
    fi
    rows+=("$release|$w|$result|${secs}s")
  done
  rows+=("$release|(VM in all, boot included)|$([[ -f $out/finished ]] && echo ok || echo "VM exit $vm_rc")|${vm_time}s")
  [[ -f $out/finished ]] || failed=1
done

printf '\n%-24s %-28s %-20s %s\n' KERNEL WHAT RESULT "WALL TIME"
for r in "${rows[@]}"; do
  IFS='|' read -r a b c d <<< "$r"
  printf '%-24s %-28s %-20s %s\n' "$a" "$b" "$c" "$d"
done
exit $failed
