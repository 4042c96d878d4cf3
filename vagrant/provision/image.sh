#!/usr/bin/env bash
# Puts the bvcni image into containerd's k8s.io namespace, where the kubelet finds it
# (the manifest uses imagePullPolicy: IfNotPresent).
# If the host built it (vagrant/.cache/bvcni-image.tar, e.g. `podman save`), import
# that; otherwise build it here from the synced sources with buildah.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
image=$(awk '$1 == "image:" { print $2; exit }' /bvcni/deploy/bvcni.yaml)
if [[ -z $image ]]; then
  echo "image.sh: no image in deploy/bvcni.yaml" >&2
  exit 1
fi

if ctr -n k8s.io images ls -q | grep -qxF "$image"; then
  echo "image.sh: $image already present"
  exit 0
fi

tar=/bvcni/vagrant/.cache/bvcni-image.tar
if [[ ! -s $tar ]]; then
  apt-get install -y -qq --no-install-recommends buildah fuse-overlayfs >/dev/null
  tar=$(mktemp /tmp/bvcni-image.XXXXXX.tar)
  trap 'rm -f "$tar"' EXIT
  buildah build --layers -f /bvcni/deploy/Dockerfile -t "$image" /bvcni
  rm -f "$tar"
  buildah push "$image" "docker-archive:${tar}:${image}"
fi
ctr -n k8s.io images import "$tar"
ctr -n k8s.io images ls -q | grep -qxF "$image"
echo "image.sh: imported $image"
