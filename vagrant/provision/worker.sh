#!/usr/bin/env bash
# kubeadm join with the cluster's bootstrap token (vagrant/.cache/kubeadm-token).
set -euo pipefail
: "${NODE_NAME:?}" "${CP_IP:?}" "${TOKEN:?}"

if [[ ! -f /etc/kubernetes/kubelet.conf ]]; then
  for _ in $(seq 60); do
    curl -fsk "https://${CP_IP}:6443/readyz" >/dev/null 2>&1 && break
    sleep 5
  done
  # A throwaway development cluster: the CA is pinned by nobody. Use
  # --discovery-token-ca-cert-hash for anything that matters.
  kubeadm join "${CP_IP}:6443" \
    --token "$TOKEN" \
    --discovery-token-unsafe-skip-ca-verification \
    --node-name "$NODE_NAME"
fi
