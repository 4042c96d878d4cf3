#!/usr/bin/env bash
# kubeadm init, then the one networking step: kubectl apply -f deploy/bvcni.yaml.
set -euo pipefail
: "${NODE_IP:?}" "${NODE_NAME:?}" "${POD_CIDR:?}" "${TOKEN:?}"

if [[ ! -f /etc/kubernetes/admin.conf ]]; then
  # --pod-network-cidr makes the controller manager give every node a podCIDR,
  # which is what bvcnid reads from its Node object.
  kubeadm init \
    --apiserver-advertise-address "$NODE_IP" \
    --pod-network-cidr "$POD_CIDR" \
    --node-name "$NODE_NAME" \
    --token "$TOKEN" \
    --token-ttl 0
fi

for home in /root /home/vagrant; do
  [[ -d $home ]] || continue
  mkdir -p "$home/.kube"
  cp /etc/kubernetes/admin.conf "$home/.kube/config"
done
chown -R vagrant: /home/vagrant/.kube 2>/dev/null || true
export KUBECONFIG=/etc/kubernetes/admin.conf

kubectl apply -f /bvcni/deploy/bvcni.yaml
kubectl -n kube-system rollout status daemonset/bvcni --timeout=300s
kubectl wait --for=condition=Ready "node/${NODE_NAME}" --timeout=300s
