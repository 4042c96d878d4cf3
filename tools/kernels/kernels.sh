# The kernels `make test-kernels` knows: a short name, the Debian suite whose
# linux-image-amd64 provides it, what runs on it by default. Sourced by
# fetch.sh and run.sh.
# shellcheck shell=bash disable=SC2034

# Not under /var/cache: virtme-ng hides the host's /var/cache from the guest,
# and the guest reads its kernel modules from here.
KCACHE=${BVCNI_KERNEL_CACHE:-/var/lib/bvcni-kernels}

# Oldest first. 5.10 is below bvcni's floor: only the refusal is tested there.
KERNELS_ALL="5.10 6.1 6.12"

kernel_suite() {
  case $1 in
    5.10) echo bullseye ;;
    6.1)  echo bookworm ;;
    6.12) echo trixie ;;
    *) echo "kernels: unknown kernel '$1' (known: $KERNELS_ALL)" >&2; return 1 ;;
  esac
}

# Kernels bvcnid must refuse (below the floor in README's "Kernels").
kernel_below_floor() {
  [[ $1 == 5.10 ]]
}

kernel_default_what() {
  case $1 in
    5.10) echo "features floor" ;;
    *)    echo "features demo bpf conntrack" ;;
  esac
}
