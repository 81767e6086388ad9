#!/bin/sh
# Slow clients: a normal client (wrk -c10) through sonic and through nginx,
# one worker each, alone and while slowhttptest holds 3000 connections with
# slow headers (slowloris, -H) or a slow body (-B). Prints rps, p99 and
# errors per row, and each attack's p99 against the same proxy's without.
#   tests/bench/slow.sh [--runs N] [--seconds S] [--connections C] [--rate R] [--only PROXIES]
exec /usr/bin/python3 "$(dirname "$0")/slow.py" "$@"
