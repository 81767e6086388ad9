#!/bin/sh
# An edge host's firewall with sonic fw (see sonic-fw(8)): run on the outside
# interface in XDP, SSH open to the office and rate-limited for the rest, a
# noisy network dropped, and an address blocked for an hour. Every command is
# idempotent: running the script again changes nothing.
set -eu
IFACE=${1:-eth0}

sonic fw attach dev "$IFACE"
sonic fw add dev "$IFACE" pass src 198.51.100.0/24 proto tcp dport 22
sonic fw add dev "$IFACE" limit 10/m burst 5 proto tcp dport 22 tcp-flags syn
sonic fw add dev "$IFACE" limit 2000/s burst 200 proto udp dport 53
sonic fw add dev all drop src 203.0.113.0/24
sonic fw block 192.0.2.7 for 1h reason "credential stuffing"
sonic fw list
# What got through, largest first; the per-rule drops are in `fw list` and
# on `sonic run`'s /metrics.
sonic stats flows --top 10
