#!/bin/sh
# Transparent steering benchmark, in the lab topology of the integration
# tests: client, gateway and server network namespaces joined by veth pairs,
# the gateway forwarding.
#
#   steered    wrk -> server:80, steered in the gateway by sonic (tc ingress +
#              bpf_sk_assign) to a transparent relay
#   iptables   the same, fed by an iptables TPROXY rule instead (mangle
#              PREROUTING, fwmark rule and local table: the classic recipe)
#   plain      wrk -> server:8080, forwarded, nothing of sonic's attached
#   attached   wrk -> server:8080, forwarded, sonic's program attached to the
#              gateway's interface with a rule for port 80 only
#
# The relay (tests/bench/relay.c, thread per connection, splice both ways)
# finds the original destination with getsockname() in both proxied rows, so
# only the steering differs. The iptables mark (0x100000) shares no bit with
# the relay's bypass mark (0x5301). The server is nginx returning a small body.
# Each row is the median of ROUNDS runs of wrk (DURATION seconds each); the
# rows are interleaved round by round so drift hits them alike.
#
# usage: tests/bench/steer.sh [BUILD_DIR]   (root; env ROUNDS, DURATION, CONNS)
set -eu

BUILD=${1:-build}
SONIC=$(readlink -f "$BUILD/sonic")
HERE=$(dirname "$(readlink -f "$0")")
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONNS=${CONNS:-32}

[ "$(id -u)" -eq 0 ] || { echo "steer.sh: needs root" >&2; exit 77; }
for tool in wrk nginx iptables gcc; do
	command -v $tool >/dev/null || { echo "steer.sh: $tool missing (packaging/install-deps)" >&2; exit 3; }
done

TAG=$$
C=sonic-bench-c-$TAG G=sonic-bench-g-$TAG S=sonic-bench-s-$TAG
GC=sbgc$TAG GS=sbgs$TAG
BPFFS=/sys/fs/bpf/sonic-steer-bench-$TAG
TMP=$(mktemp -d /tmp/sonic-steer-bench.XXXXXX)
RELAY_PID="" NGINX_PID=""

in_ns() { ns=$1; shift; nsenter --net=/run/netns/$ns "$@"; }

cleanup() {
	[ -n "$RELAY_PID" ] && kill "$RELAY_PID" 2>/dev/null || true
	[ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
	in_ns $G "$SONIC" --bpffs $BPFFS -q tproxy flush 2>/dev/null || true
	"$SONIC" --bpffs $BPFFS -q prog unload --force 2>/dev/null || true
	rm -rf $BPFFS
	# Whatever still runs in the namespaces (nginx's workers outlive a
	# signal to the nsenter'd master now and then) goes with them.
	for ns in $C $G $S; do
		ip netns pids $ns 2>/dev/null | xargs -r kill -9 2>/dev/null || true
		ip netns del $ns 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

for ns in $C $G $S; do ip netns add $ns; ip -n $ns link set lo up; done
ip link add c0$GC netns $C type veth peer name $GC netns $G
ip link add s0$GS netns $S type veth peer name $GS netns $G
ip -n $C addr add 10.10.1.2/24 dev c0$GC; ip -n $C link set c0$GC up
ip -n $G addr add 10.10.1.1/24 dev $GC; ip -n $G link set $GC up
ip -n $G addr add 10.10.2.1/24 dev $GS; ip -n $G link set $GS up
ip -n $S addr add 10.10.2.2/24 dev s0$GS; ip -n $S link set s0$GS up
ip -n $C route add default via 10.10.1.1
ip -n $S route add default via 10.10.2.1
in_ns $G sysctl -qw net.ipv4.ip_forward=1
in_ns $G sysctl -qw net.ipv4.conf.all.rp_filter=0

cat > $TMP/nginx.conf <<CONF
daemon off;
worker_processes 1;
pid $TMP/nginx.pid;
error_log $TMP/nginx.err;
events { worker_connections 1024; }
http {
	access_log off;
	server { listen 10.10.2.2:80 reuseport backlog=1024; listen 10.10.2.2:8080 reuseport backlog=1024;
	         location / { return 200 "ok\n"; } }
}
CONF
in_ns $S nginx -c $TMP/nginx.conf -p $TMP & NGINX_PID=$!

gcc -O2 -pthread -o $TMP/relay "$HERE/relay.c"
in_ns $G $TMP/relay 0.0.0.0 15001 > $TMP/relay.out & RELAY_PID=$!
sleep 0.5
grep -q ready $TMP/relay.out || { echo "steer.sh: relay did not start" >&2; exit 1; }

sonic_on() { in_ns $G "$SONIC" --bpffs $BPFFS -q tproxy add dev $GC proto tcp dport 80 to 127.0.0.1:15001; }
sonic_off() { in_ns $G "$SONIC" --bpffs $BPFFS -q tproxy flush; }
ipt_on() {
	in_ns $G ip rule add fwmark 0x100000/0x100000 lookup 100
	in_ns $G ip route add local 0.0.0.0/0 dev lo table 100
	in_ns $G iptables -t mangle -A PREROUTING -i $GC -p tcp --dport 80 \
		-j TPROXY --on-port 15001 --tproxy-mark 0x100000/0x100000
}
ipt_off() {
	in_ns $G iptables -t mangle -F PREROUTING
	in_ns $G ip route del local 0.0.0.0/0 dev lo table 100
	in_ns $G ip rule del fwmark 0x100000/0x100000 lookup 100
}

# Requests per second of one wrk run against PORT; fails on socket errors.
rps() {
	out=$(in_ns $C wrk -t1 -c$CONNS -d${DURATION}s http://10.10.2.2:$1/)
	if echo "$out" | grep -q "Socket errors\|Non-2xx"; then
		echo "steer.sh: wrk saw errors on port $1:" >&2; echo "$out" >&2; exit 1
	fi
	echo "$out" | awk '/^Requests\/sec:/ { print $2 }'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Warm up and check each path once.
sonic_on; rps 80 >/dev/null; sonic_off
ipt_on; rps 80 >/dev/null; ipt_off
grep -q . $TMP/relay.out

for i in $(seq "$ROUNDS"); do
	sonic_on; rps 80 >> $TMP/steered; rps 8080 >> $TMP/attached; sonic_off
	ipt_on; rps 80 >> $TMP/iptables; ipt_off
	rps 8080 >> $TMP/plain
	echo "round $i/$ROUNDS done" >&2
done

steered=$(median < $TMP/steered); iptables=$(median < $TMP/iptables)
plain=$(median < $TMP/plain); attached=$(median < $TMP/attached)
echo
echo "wrk -t1 -c$CONNS -d${DURATION}s, median of $ROUNDS rounds, requests/s (runs in parentheses)"
printf '%-10s %10s   %s\n' steered "$steered" "($(tr '\n' ' ' < $TMP/steered))"
printf '%-10s %10s   %s\n' iptables "$iptables" "($(tr '\n' ' ' < $TMP/iptables))"
printf '%-10s %10s   %s\n' plain "$plain" "($(tr '\n' ' ' < $TMP/plain))"
printf '%-10s %10s   %s\n' attached "$attached" "($(tr '\n' ' ' < $TMP/attached))"
echo
awk -v s="$steered" -v i="$iptables" -v p="$plain" -v a="$attached" 'BEGIN {
	printf "steered / iptables TPROXY: %.3fx (target >= 1.0x)\n", s / i
	printf "non-matching cost of the attached program: %.1f%% (target <= 5%%)\n", (1 - a / p) * 100
}'
