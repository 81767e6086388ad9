#!/bin/sh
# Per-request JavaScript through one worker, wrk -c50 on loopback: the same
# rule (403 for /union\s+select/i in the decoded query, x-scripted: 1 added to
# the origin's response) as a sonic worker (module and service-worker forms,
# with and without accelerated legs) and as nginx njs, against plain nginx and
# unscripted sonic. Prints rps, p99, ratios and the script's CPU us/request.
#   tests/bench/scripted.sh [--runs N] [--seconds S] [--only ROWS]
exec /usr/bin/python3 "$(dirname "$0")/scripted.py" "$@"
