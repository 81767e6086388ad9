#!/bin/sh
# Local socket acceleration: plain loopback vs a naive sockops + sk_msg pair
# vs sonic, one run, table with ratios. Needs root and a built sonic.
#   tests/bench/accel.sh [--runs N] [--seconds S] [--only ROWS] [--json FILE]
exec /usr/bin/python3 "$(dirname "$0")/accel.py" "$@"
