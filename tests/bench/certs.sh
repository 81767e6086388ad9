#!/bin/sh
# Certificate minting and lookup: sonic's store next to mitmproxy's.
#
#   tests/bench/certs.sh [BUILD_DIR]      (default: build; RUNS=3 NAMES=1000)
#
# Each sonic row is tests/bench/cert_bench.cpp in one configuration: the
# time CertStore::get() takes for NAMES names never seen (median, p99), the
# total for all of them including writing every leaf file, and a lookup of
# a cached name (one thread; and every core at once). The mitmproxy row is
# tests/bench/mitm_certs.py: mitmproxy's own CertStore, in process, doing
# the certificate work of a first request to a new host. Each configuration
# runs RUNS times and the run with the median mint time is shown, since
# other load on the machine moves single runs.
set -eu
cd "$(dirname "$0")/../.."
BUILD=${1:-${SONIC_BUILD_DIR:-build}}
RUNS=${RUNS:-3}
NAMES=${NAMES:-1000}
BENCH=$BUILD/sonic_cert_bench
PYTHON=/usr/bin/python3

if [ ! -x "$BENCH" ]; then
	echo "certs.sh: $BENCH not found: build first (cmake --build $BUILD)" >&2
	exit 3
fi

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

run() { # LABEL COMMAND...
	label=$1
	shift
	i=0
	while [ $i -lt "$RUNS" ]; do
		printf '%s\t' "$label" >>"$OUT/runs"
		"$@" | tail -n 1 >>"$OUT/runs"
		i=$((i + 1))
	done
}

echo "certs.sh: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), load $(cut -d' ' -f1-3 /proc/loadavg), $RUNS runs of $NAMES names" >&2
run "sonic: own key per leaf, key pool (default)" "$BENCH" --names "$NAMES"
run "sonic: own key per leaf, no pool" "$BENCH" --names "$NAMES" --key-pool 0
run "sonic: one shared leaf key" "$BENCH" --names "$NAMES" --policy shared
run "sonic: default, memory only (no files)" "$BENCH" --names "$NAMES" --memory
run "sonic: default, RSA-2048 CA" "$BENCH" --names "$NAMES" --ca-key rsa-2048
if $PYTHON -c 'import mitmproxy' 2>/dev/null; then
	run "mitmproxy $($PYTHON -c 'from mitmproxy import version; print(version.VERSION)'): RSA-2048 CA, CA key reused" \
		$PYTHON tests/bench/mitm_certs.py "$NAMES"
else
	echo "certs.sh: mitmproxy is not installed (packaging/install-deps): its row is left out" >&2
fi

$PYTHON - "$OUT/runs" <<'PY'
import json
import sys

rows = {}
for line in open(sys.argv[1]):
    label, data = line.rstrip("\n").split("\t", 1)
    rows.setdefault(label, []).append(json.loads(data))

def pick(runs):
    runs = sorted(runs, key=lambda r: r["mint_median_us"])
    return runs[len(runs) // 2]

def cell(value, fmt):
    return "-" if value is None else fmt % value

names = next(iter(rows.values()))[0]["names"]
threads = max(r.get("threads", 0) for runs in rows.values() for r in runs)
header = ("configuration", "new name: median", "p99", "%d names: total" % names, "cached lookup",
          "cached, %d threads" % threads)
table = [header]
chosen = {}
for label, runs in rows.items():
    r = pick(runs)
    chosen[label] = r
    table.append((label,
                  cell(r["mint_median_us"], "%.0f us"),
                  cell(r["mint_p99_us"], "%.0f us"),
                  cell(r["mint_total_ms"], "%.0f ms"),
                  cell(r["cached_ns"], "%.0f ns"),
                  cell(r.get("cached_parallel_ns_per_lookup_per_thread"), "%.0f ns")))
widths = [max(len(row[i]) for row in table) for i in range(len(header))]
for n, row in enumerate(table):
    print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    if n == 0:
        print("  ".join("-" * w for w in widths))

default = next(r for label, r in chosen.items() if "(default)" in label)
mitm = next((r for label, r in chosen.items() if label.startswith("mitmproxy")), None)
print()
ok = True
for what, value, limit, unit in (("median mint for a new name", default["mint_median_us"], 500, "us"),
                                 ("cached lookup", default["cached_ns"], 1000, "ns")):
    good = value < limit
    ok &= good
    print("%s: %.0f %s (target < %d %s): %s" % (what, value, unit, limit, unit, "met" if good else "MISSED"))
if mitm:
    print("mitmproxy / sonic default: new name %.1fx, all names %.1fx, cached lookup %.1fx" % (
        mitm["mint_median_us"] / default["mint_median_us"],
        mitm["mint_total_ms"] / default["mint_total_ms"],
        mitm["cached_ns"] / default["cached_ns"]))
sys.exit(0 if ok else 1)
PY
