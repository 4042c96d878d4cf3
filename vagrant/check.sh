#!/usr/bin/env bash
# The original README's checks, on the Vagrant cluster (run on the control plane:
#   vagrant ssh cp -c 'bash /bvcni/vagrant/check.sh'):
#   pods on different nodes ping each other; pods reach the internet.
# Plus what those checks rely on. Prints PASS/FAIL per check; exits 1 if any failed.
set -uo pipefail
export KUBECONFIG=${KUBECONFIG:-/etc/kubernetes/admin.conf}
NS=bvcni-check
IMAGE=${CHECK_IMAGE:-docker.io/library/busybox:1.36}
INTERNET_IP=${INTERNET_IP:-1.1.1.1}
INTERNET_NAME=${INTERNET_NAME:-example.com}

failed=0
check() {
  local name=$1
  shift
  if "$@" >/tmp/bvcni-check.out 2>&1; then
    printf 'PASS  %s\n' "$name"
  else
    printf 'FAIL  %s\n' "$name"
    sed 's/^/      /' /tmp/bvcni-check.out | tail -n 5
    failed=1
  fi
}

cleanup() { kubectl delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1; }
trap cleanup EXIT

mapfile -t workers < <(kubectl get nodes -l '!node-role.kubernetes.io/control-plane' -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
if ((${#workers[@]} < 2)); then
  echo "FAIL  need two worker nodes, found ${#workers[@]}"
  exit 1
fi
cp_node=$(kubectl get nodes -l node-role.kubernetes.io/control-plane -o jsonpath='{.items[0].metadata.name}')

check "bvcni DaemonSet ready on every node" \
  kubectl -n kube-system rollout status daemonset/bvcni --timeout=180s
check "every node Ready" kubectl wait --for=condition=Ready node --all --timeout=180s
network_available_everywhere() {
  kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="NetworkUnavailable")].status}{"\n"}{end}' |
    awk '{ print } $2 != "False" { bad = 1 } END { exit bad }'
}
check "every node has NetworkUnavailable=False" network_available_everywhere

kubectl create namespace "$NS" >/dev/null 2>&1 || true
# One pod pinned to each worker and one to the control plane (nodeName bypasses the
# scheduler, so taints do not matter and placement is certain).
start_pod() {
  local pod=$1 node=$2
  kubectl -n "$NS" apply -f - >/dev/null <<POD
apiVersion: v1
kind: Pod
metadata:
  name: $pod
spec:
  nodeName: $node
  tolerations: [{ operator: Exists }]
  terminationGracePeriodSeconds: 0
  containers:
    - name: main
      image: $IMAGE
      command: ["sleep", "3600"]
POD
}
start_pod a "${workers[0]}"
start_pod b "${workers[1]}"
start_pod c "$cp_node"
check "test pods running" kubectl -n "$NS" wait --for=condition=Ready pod/a pod/b pod/c --timeout=180s

ip_of() { kubectl -n "$NS" get pod "$1" -o jsonpath='{.status.podIP}'; }
node_ip_of() { kubectl get node "$1" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}'; }
ping_from() { kubectl -n "$NS" exec "$1" -- ping -c 3 -W 2 "$2"; }
a_ip=$(ip_of a)
b_ip=$(ip_of b)
c_ip=$(ip_of c)
echo "      pods: a=$a_ip (${workers[0]}) b=$b_ip (${workers[1]}) c=$c_ip ($cp_node)"

check "pod a ($a_ip) pings pod b on another node ($b_ip)" ping_from a "$b_ip"
check "pod b ($b_ip) pings pod a on another node ($a_ip)" ping_from b "$a_ip"
check "pod a pings pod c on the control plane ($c_ip)" ping_from a "$c_ip"
# A TCP connection held open from b to a: a's socket table shows b's own address.
source_preserved() {
  kubectl -n "$NS" exec a -- sh -c 'timeout 10 nc -l -p 7777 >/dev/null' &
  local listener=$!
  sleep 1
  kubectl -n "$NS" exec b -- sh -c "sleep 5 | nc $a_ip 7777" &
  local client=$!
  sleep 2
  kubectl -n "$NS" exec a -- netstat -tn | grep ':7777' | grep -F " $b_ip:"
  local rc=$?
  kill "$listener" "$client" 2>/dev/null
  wait 2>/dev/null
  return "$rc"
}
check "pod a sees pod b's real address on a TCP connection (no NAT inside the cluster)" source_preserved
check "the control plane node reaches pod a on a worker" ping -c 3 -W 2 "$a_ip"
check "pod a reaches node ${workers[1]} ($(node_ip_of "${workers[1]}"))" ping_from a "$(node_ip_of "${workers[1]}")"
# Services: kube-proxy DNATs a pod's connection to a ClusterIP in the host stack. The API
# server's TLS port answers a plain HTTP request with 400, which proves the connection.
svc_ip=$(kubectl get service kubernetes -n default -o jsonpath='{.spec.clusterIP}')
reaches_service() {
  kubectl -n "$NS" exec "$1" -- wget -T 5 -O /dev/null "http://$svc_ip:443/" 2>&1 | grep -q 'HTTP/1\.[01] 400'
}
check "pod a reaches the kubernetes Service ($svc_ip:443) through kube-proxy" reaches_service a
check "pod a reaches the internet ($INTERNET_IP)" ping_from a "$INTERNET_IP"
check "pod b reaches the internet by name ($INTERNET_NAME, through cluster DNS)" \
  kubectl -n "$NS" exec b -- wget -q -T 5 -O /dev/null "http://$INTERNET_NAME/"

if ((failed)); then
  echo "RESULT: FAIL"
  exit 1
fi
echo "RESULT: PASS"
