#!/usr/bin/env bash
# Fetches what `make test-kernels` needs, once: Debian's kernel images for the
# suites asked for, virtme-ng from Debian trixie (architecture-independent
# Python, extracted, not installed) and, through the system's apt, the host
# tools the VMs need (qemu, udev for virtme-ng's script mode, kmod).
#
# Other suites are read through a sources list of our own under the cache
# (Dir::Etc::sourcelist, Dir::State::Lists, Dir::Cache), so the system's apt
# configuration and package lists are left alone. Kernels are extracted, not
# installed: nothing lands in /boot.
#
# Usage: fetch.sh KERNEL...   (KERNEL is one of the names in kernels.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools/kernels/kernels.sh
source "$here/kernels.sh"

HOST_PACKAGES=(qemu-system-x86 udev kmod file python3-requests python3-argcomplete)

missing=()
for p in "${HOST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "kernels: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# virtme-ng links the guest's modules under /lib/modules, a tmpfs it mounts over
# the host's directory: that directory must exist (a host kernel built without
# modules has none).
[[ -d /lib/modules ]] || mkdir -p /lib/modules

# The mirror the system's apt already uses (deb822 or one-line format).
mirror() {
  local m
  m=$(grep -hoE '^(URIs:|deb)[[:space:]]+https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
        /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | head -1 | awk '{print $2}')
  m=${m:-http://deb.debian.org/debian}
  echo "${m%/}"
}

# apt restricted to one suite, with its own lists and cache under $KCACHE/apt/$suite.
suite_apt() {
  local suite=$1; shift
  local d="$KCACHE/apt/$suite"
  "$@" -o Dir::Etc::sourcelist="$d/sources.list" -o Dir::Etc::sourceparts=/nonexistent \
       -o Dir::State::Lists="$d/lists" -o Dir::Cache="$d/cache" -o Dir::State::status=/dev/null \
       -o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1 -o APT::Sandbox::User=root
}

suite_update() {
  local suite=$1 d="$KCACHE/apt/$1"
  [[ -f $d/updated ]] && return 0
  mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
  echo "deb $(mirror) $suite main" > "$d/sources.list"
  echo "kernels: reading Debian $suite's package lists"
  suite_apt "$suite" apt-get update -qq
  touch "$d/updated"
}

# Downloads PACKAGE's current version from SUITE into DIR and extracts it there.
fetch_deb() {
  local suite=$1 pkg=$2 dir=$3
  mkdir -p "$dir"
  (cd "$dir" && suite_apt "$suite" apt-get download -qq "$pkg")
  local deb
  deb=$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" | head -1)
  dpkg-deb -x "$deb" "$dir/root"
  rm -f "$deb"
}

# virtme-ng (its Python under usr/lib/python3/dist-packages, virtme-run under usr/bin).
if [[ ! -x $KCACHE/virtme-ng/root/usr/bin/virtme-run ]]; then
  suite_update trixie
  rm -rf "$KCACHE/virtme-ng"
  echo "kernels: fetching virtme-ng (trixie)"
  fetch_deb trixie virtme-ng "$KCACHE/virtme-ng"
fi

for k in "$@"; do
  suite=$(kernel_suite "$k")
  dir="$KCACHE/kernels/$k"
  [[ -f $dir/release ]] && continue
  suite_update "$suite"
  # linux-image-amd64 is the suite's metapackage; its first dependency is the current image.
  pkg=$(suite_apt "$suite" apt-cache show linux-image-amd64 | sed -n 's/^Depends: \(linux-image-[^ ,]*\).*/\1/p' | head -1)
  [[ -n $pkg ]] || { echo "kernels: no linux-image-amd64 in Debian $suite" >&2; exit 1; }
  echo "kernels: fetching $pkg (Debian $suite)"
  rm -rf "$dir"
  fetch_deb "$suite" "$pkg" "$dir"
  # trixie's packages are /usr-merged; virtme-ng and depmod look under <root>/lib/modules.
  [[ -e $dir/root/lib || ! -d $dir/root/usr/lib/modules ]] || ln -s usr/lib "$dir/root/lib"
  release=$(find "$dir/root/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | head -1)
  [[ -f $dir/root/boot/vmlinuz-$release ]] || { echo "kernels: $pkg has no /boot/vmlinuz-$release" >&2; exit 1; }
  depmod -b "$dir/root" -a "$release"
  echo "$release" > "$dir/release"
done
