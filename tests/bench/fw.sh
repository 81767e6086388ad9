#!/bin/sh
# Edge firewall: sonic's XDP drop vs nftables (netdev ingress) vs iptables
# (raw PREROUTING), CPU per dropped packet and legitimate rps under a flood,
# in network namespaces; one run, medians and ratios. Needs root and a built
# sonic. Not part of ctest.
#   tests/bench/fw.sh [--runs N] [--seconds S] [--flood-pps PPS] [--only drops|legit] [--json FILE]
exec /usr/bin/python3 "$(dirname "$0")/fw.py" "$@"
