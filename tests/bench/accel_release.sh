#!/bin/sh
# accel's release paths (sockmap iterator, SOCKHASH walk): how long
# `sonic accel disable` takes to hand N connections back, per path, medians.
#   tests/bench/accel_release.sh [--runs N] [--conns 64,512] [--json FILE]
exec /usr/bin/python3 "$(dirname "$0")/accel_release.py" "$@"
