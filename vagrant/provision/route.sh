#!/usr/bin/env bash
# Once packages and images are in, before kubeadm: send the default route through the
# private network. bvcnid's uplink (the default route's interface) must be the one
# that carries the node IP, and masqueraded pod traffic leaves through that same
# uplink, so the private network's gateway (the host, .1) must reach the internet:
# libvirt NATs its private networks; with VirtualBox NAT 192.168.56.0/24 on the host.
# The provider's NAT NIC stays up for `vagrant ssh`.
set -euo pipefail
: "${NODE_IP:?}"

gw="${NODE_IP%.*}.1"
dev=$(ip -o -4 addr show | awk -v ip="$NODE_IP" '{ split($4, a, "/"); if (a[1] == ip) { print $2; exit } }')
if [[ -z $dev ]]; then
  echo "route.sh: no interface holds $NODE_IP" >&2
  exit 1
fi

# dhclient on the NAT NIC would put its default route back at every lease renewal.
cat >/etc/dhcp/dhclient-enter-hooks.d/bvcni-no-nat-default <<HOOK
# Written by bvcni's vagrant/provision/route.sh: no default route from the NAT NIC.
if [ "\$interface" != "$dev" ]; then unset new_routers; fi
HOOK

cat >/etc/systemd/system/bvcni-default-route.service <<UNIT
[Unit]
Description=Default route through the private network (bvcni vagrant cluster)
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=/sbin/ip route replace default via ${gw} dev ${dev}
RemainAfterExit=yes

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable bvcni-default-route.service >/dev/null
ip route replace default via "$gw" dev "$dev"
ip route show default
