#!/usr/bin/env bash
# Every node: kernel settings, containerd, kubelet/kubeadm/kubectl from pkgs.k8s.io.
# Nothing about pod networking: that is deploy/bvcni.yaml's job.
set -euo pipefail
: "${NODE_IP:?}" "${K8S_MINOR:?}"
export DEBIAN_FRONTEND=noninteractive

swapoff -a
sed -i '/\sswap\s/s/^/#/' /etc/fstab

# The bridge module's netfilter hooks are a kubeadm preflight requirement (kube-proxy
# in iptables mode); bvcni itself needs neither br_netfilter nor iptables.
cat >/etc/modules-load.d/k8s.conf <<'MODS'
overlay
br_netfilter
MODS
modprobe overlay
modprobe br_netfilter
cat >/etc/sysctl.d/90-k8s.conf <<'SYSCTL'
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
SYSCTL
sysctl --system >/dev/null

apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  ca-certificates curl gpg apt-transport-https containerd runc iproute2 bpftool jq >/dev/null

# containerd: systemd cgroups (kubelet's default since 1.22); CNI dirs stay the defaults
# (/etc/cni/net.d, /opt/cni/bin), which are the ones the DaemonSet writes.
mkdir -p /etc/containerd
containerd config default >/etc/containerd/config.toml
sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
systemctl restart containerd
systemctl enable containerd >/dev/null

keyring=/etc/apt/keyrings/kubernetes-apt-keyring.gpg
mkdir -p /etc/apt/keyrings
if [[ ! -s $keyring ]]; then
  curl -fsSL "https://pkgs.k8s.io/core:/stable:/${K8S_MINOR}/deb/Release.key" | gpg --dearmor -o "$keyring"
fi
echo "deb [signed-by=${keyring}] https://pkgs.k8s.io/core:/stable:/${K8S_MINOR}/deb/ /" \
  >/etc/apt/sources.list.d/kubernetes.list
apt-get update -qq
apt-get install -y -qq kubelet kubeadm kubectl >/dev/null
apt-mark hold kubelet kubeadm kubectl >/dev/null

# The VMs' first NIC is the provider's NAT with the same address on every VM: the
# node address (and so bvcni's VXLAN underlay) must be the private network's.
echo "KUBELET_EXTRA_ARGS=--node-ip=${NODE_IP}" >/etc/default/kubelet
systemctl enable kubelet >/dev/null

# Pulled now, through the provider's NAT NIC, before route.sh moves the default route.
kubeadm config images pull >/dev/null

# bpffs: systemd mounts it on Debian 12; the DaemonSet's init container would too.
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
