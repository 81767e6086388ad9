#!/bin/sh
# TLS termination: sonic intercepting (minted leaves) vs nginx (static
# certificate) vs mitmproxy (reverse mode), one worker each: keep-alive,
# resumed and full handshakes per connection. Prints a table with ratios.
#   tests/bench/tls.sh [--runs N] [--seconds S] [--only sonic,nginx,mitmproxy]
exec /usr/bin/python3 "$(dirname "$0")/tls.py" "$@"
