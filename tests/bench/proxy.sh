#!/bin/sh
# HTTP proxy comparison: origin direct, nginx proxy_pass, HAProxy and sonic,
# one worker each, wrk -c50 on loopback; then L4 throughput through a TCP
# route and 10,000 idle keep-alive connections. Prints tables with ratios.
#   tests/bench/proxy.sh [--runs N] [--seconds S] [--only ROWS] [--idle-conns N]
exec /usr/bin/python3 "$(dirname "$0")/proxy.py" "$@"
