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
# Each round runs every row once (wrk, DURATION seconds), in ABBA order; the
# ratios are taken within each round and their median printed, next to the
# system's CPU time per request and the tc program's own run time per packet
# (kernel.bpf_stats_enabled, restored after).
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
for tool in wrk nginx iptables gcc bpftool; do
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

# One wrk run against PORT, as "rps cpu_us_per_request non2xx socket_errors":
# the CPU is every CPU's busy time from /proc/stat over the run (wrk, relay,
# nginx and the softirqs that forward), divided by the requests. A run with
# any non-2xx response or socket error marks its row FAILED in the table.
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
run() {
	b0=$(busy)
	out=$(in_ns $C wrk -t1 -c$CONNS -d${DURATION}s http://10.10.2.2:$1/)
	b1=$(busy)
	echo "$out" | awk -v b="$((b1 - b0))" -v hz="$(getconf CLK_TCK)" '
		/^Requests\/sec:/ { rps = $2 } / requests in / { n = $1 }
		/Non-2xx or 3xx responses:/ { bad = $5 }
		/Socket errors:/ { gsub(",", ""); errs = $4 + $6 + $8 + $10 }
		END { printf "%s %.2f %d %d\n", rps, n ? b / hz * 1e6 / n : 0, bad, errs }'
}

# The tc program's own cost: run_time_ns and run_cnt under kernel.bpf_stats_enabled.
prog_stats() { # bpftool leaves both out while they are 0
	out=$(bpftool -j prog show pinned $BPFFS/prog/steer_tc 2>/dev/null |
		sed -n 's/.*"run_time_ns":\([0-9]*\),"run_cnt":\([0-9]*\).*/\1 \2/p')
	echo "${out:-0 0}"
}
STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
trap 'sysctl -qw kernel.bpf_stats_enabled=$STATS_WAS; cleanup' EXIT INT TERM

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v c="$1" '{ print $c }' "$2"; }

# Warm up and check each path once.
sonic_on; run 80 >/dev/null; sonic_off
ipt_on; run 80 >/dev/null; ipt_off
grep -q . $TMP/relay.out

# Each round measures every row once; odd rounds go steered, iptables,
# plain, attached and even rounds the reverse (ABBA), so neither order nor
# drift favours a row. The ratios are taken within a round, then the median.
# ROW PORT: one run with sonic's rule on.
with_sonic() { sonic_on; run $2 >> $TMP/$1; sonic_off; }
measure() {
	case $1 in
	steered) with_sonic steered 80 ;;
	attached) with_sonic attached 8080 ;;
	iptables) ipt_on; run 80 >> $TMP/iptables; ipt_off ;;
	plain) run 8080 >> $TMP/plain ;;
	esac
}
for i in $(seq "$ROUNDS"); do
	if [ $((i % 2)) -eq 1 ]; then order="steered iptables plain attached"; else order="attached plain iptables steered"; fi
	for row in $order; do measure $row; done
	s=$(tail -1 $TMP/steered) t=$(tail -1 $TMP/iptables) p=$(tail -1 $TMP/plain) a=$(tail -1 $TMP/attached)
	echo "$s $t" | awk '{ print $1 / $5, $6 / $2 }' >> $TMP/ratio_steer   # rps ratio, CPU ratio (iptables/steered)
	echo "$a $p" | awk '{ print $1 / $5, $2 / $6 }' >> $TMP/ratio_attach  # rps ratio, CPU ratio (attached/plain)
	echo "round $i/$ROUNDS: steered $s, iptables $t, plain $p, attached $a (rps, CPU us/req, non-2xx, socket errors)" >&2
done

# The program's own run time, in runs of their own: the statistics clock
# costs every BPF program on the host, so the rounds above run without it.
sysctl -qw kernel.bpf_stats_enabled=1
for r in steered:80 attached:8080; do
	sonic_on
	p0=$(prog_stats); run ${r#*:} > /dev/null; p1=$(prog_stats)
	echo $p0 $p1 | awk '{ print $3 - $1, $4 - $2 }' > $TMP/${r%:*}.prog
	sonic_off
done
sysctl -qw kernel.bpf_stats_enabled=$STATS_WAS

errors() { awk '{ b += $3; e += $4 } END { if (b + e) printf "FAILED: %d non-2xx, %d socket errors", b, e; else printf "0" }' $TMP/$1; }
row() {
	printf '%-10s %10s %12s   %-40s (%s)\n' $1 "$(col 1 $TMP/$1 | median)" "$(col 2 $TMP/$1 | median)" \
		"$(errors $1)" "$(col 1 $TMP/$1 | tr '\n' ' ' | sed 's/ $//')"
}
per_pkt() { awk '{ ns += $1; n += $2 } END { if (n) printf "%.0f ns/packet over %d packets", ns / n, n; else printf "no runs" }' $TMP/$1.prog; }
echo
echo "wrk -t1 -c$CONNS -d${DURATION}s, $ROUNDS rounds (ABBA order); medians; CPU = all CPUs' busy time per request"
echo "A row whose runs saw any non-2xx response or socket error is FAILED."
printf '%-10s %10s %12s   %-40s %s\n' row "req/s" "CPU us/req" errors "runs, req/s"
row steered; row iptables; row plain; row attached
echo
echo "steer_tc run time (kernel.bpf_stats_enabled, one run each; includes the statistics clock itself):"
echo "  steered: $(per_pkt steered); not matching: $(per_pkt attached)"
echo
low() { col "$1" "$2" | sort -n | head -1; }
high() { col "$1" "$2" | sort -n | tail -1; }
awk -v r="$(col 1 $TMP/ratio_steer | median)" -v c="$(col 2 $TMP/ratio_steer | median)" \
    -v a="$(col 1 $TMP/ratio_attach | median)" -v d="$(col 2 $TMP/ratio_attach | median)" \
    -v lo1="$(low 1 $TMP/ratio_steer)" -v hi1="$(high 1 $TMP/ratio_steer)" \
    -v lo3="$(low 1 $TMP/ratio_attach)" -v hi3="$(high 1 $TMP/ratio_attach)" 'BEGIN {
	printf "steered / iptables TPROXY: %.3fx req/s (rounds %.3f..%.3f), %.3fx CPU per request (target >= 1.0x)\n", r, lo1, hi1, c
	printf "non-matching traffic with the program attached: %.1f%% fewer req/s (rounds %.1f..%.1f), %.1f%% more CPU per request (target <= 5%%)\n", (1 - a) * 100, (1 - hi3) * 100, (1 - lo3) * 100, (d - 1) * 100
}'
