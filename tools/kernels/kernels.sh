# The kernels `make test-kernels` knows: a short name, the Debian suite whose
# linux-image-amd64 provides it. Sourced by fetch.sh and run.sh.
# shellcheck shell=bash

KCACHE=${BVCNI_KERNEL_CACHE:-/var/lib/bvcni-kernels}

# The default matrix: the kernels users run, oldest first. 5.10 is below the
# floor and only runs WHAT=floor.
KERNELS_DEFAULT="6.1 6.12"

kernel_suite() {
  case $1 in
    5.10) echo bullseye ;;
    6.1)  echo bookworm ;;
    6.12) echo trixie ;;
    *) echo "kernels: unknown kernel '$1' (known: 5.10 6.1 6.12)" >&2; return 1 ;;
  esac
}
