#!/usr/bin/python3
"""accel's two release paths, measured: how long `sonic accel disable` takes
to hand N accelerated connections back to the normal stack, through the
sockmap iterator (iter/sockmap, sonic's first choice) and through the walk
(a userspace walk of the SOCKHASH, where the kernel refuses tracing
programs; SONIC_BPF_REFUSE=accel_release forces it anywhere).

For each path and each connection count, every run enables accel on a fresh
cgroup, opens the connections (tests/lib/mover.py, 64 KiB each way, then
held open), waits until all of them are in the SOCKHASH, and times the
disable: its wall time, and what it reports released. A path this kernel
refuses is reported as such, with the reason. Medians over the runs.

  tests/bench/accel_release.py [--runs N] [--conns 64,512] [--json FILE]

Needs root and a built sonic; removes every cgroup, bpffs directory and
process it makes.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))

import sonictest  # noqa: E402

PATHS = {"iterator": {}, "walk": {"SONIC_BPF_REFUSE": "accel_release"}}


def one_run(sonic, conns):
    """Seconds `accel disable` takes for CONNS held connections, and what it
    says it released."""
    cgroup = sonictest.make_cgroup("release-bench")
    try:
        sonic.ok("accel", "enable", "cgroup", cgroup)
        hold = 30 + conns / 10  # seconds on a normal machine; the mover's is scaled, as wait_for's
        p = sonictest.mover(cgroup, conns=conns, bytes=64 << 10, hold=sonictest.scaled(hold))
        try:
            if not sonictest.wait_for(lambda: sonic.stats()["sockets"] == 2 * conns, seconds=hold / 2):
                raise RuntimeError("only %d of %d sockets in the SOCKHASH" % (sonic.stats()["sockets"], 2 * conns))
            started = time.monotonic()
            r = sonic.ok("accel", "disable", "cgroup", cgroup, "--timeout", "10")
            took = time.monotonic() - started
        finally:
            p.kill()
            p.communicate()
        return took, r["released_sockets"]
    finally:
        sonictest.remove_cgroup(cgroup)


def empty_disable(sonic):
    """Seconds a disable with nothing to release takes: the process and the
    BPF objects it opens, the floor under every row."""
    cgroup = sonictest.make_cgroup("release-floor")
    try:
        sonic.ok("accel", "enable", "cgroup", cgroup)
        started = time.monotonic()
        sonic.ok("accel", "disable", "cgroup", cgroup)
        return time.monotonic() - started
    finally:
        sonictest.remove_cgroup(cgroup)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--conns", default="64,512", help="comma-separated connection counts")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("accel release benchmark: needs root")
    counts = [int(c) for c in args.conns.split(",")]

    results = {}
    for path, env in PATHS.items():
        why = sonictest.release_path_refusal(path)
        if why:
            results[path] = {"refused": why}
            print("%-8s refused by this kernel: %s" % (path, why), file=sys.stderr, flush=True)
            continue
        root = "/sys/fs/bpf/" + sonictest.unique("release-bench")
        sonic = sonictest.Sonic(root, env=env)
        try:
            floor = [empty_disable(sonic) for _ in range(args.runs)]
            rows = {"floor_ms": statistics.median(floor) * 1000}
            for conns in counts:
                runs = []
                for i in range(args.runs):
                    took, released = one_run(sonic, conns)
                    print("%-8s %4d conns run %d: %.1f ms, released %d" % (path, conns, i + 1, took * 1000, released),
                          file=sys.stderr, flush=True)
                    runs.append((took, released))
                rows[conns] = {"ms": statistics.median(t for t, _ in runs) * 1000,
                               "released": statistics.median(r for _, r in runs)}
            results[path] = rows
        finally:
            sonictest.remove_bpffs_root(root)

    print()
    print("accel release paths: Linux %s, %d CPUs, %d runs, medians" % (os.uname().release, os.cpu_count(), args.runs))
    print()
    print("| release path | connections | sockets released | accel disable (ms) | minus an empty disable (ms) |"
          " per socket (us) |")
    print("|---|---|---|---|---|---|")
    for path, rows in results.items():
        if "refused" in rows:
            print("| %s | - | - | refused: %s | - | - |" % (path, rows["refused"]))
            continue
        print("| %s | 0 | 0 | %.1f | - | - |" % (path, rows["floor_ms"]))
        for conns in counts:
            r = rows[conns]
            net = r["ms"] - rows["floor_ms"]
            print("| %s | %d | %d | %.1f | %.1f | %.1f |" % (path, conns, r["released"], r["ms"], net,
                                                            net * 1000 / max(r["released"], 1)))
    if all("refused" not in rows for rows in results.values()):
        for conns in counts:
            print("walk / iterator, %d connections (net of the empty disable): %.2fx" % (
                conns, (results["walk"][conns]["ms"] - results["walk"]["floor_ms"]) /
                max(results["iterator"][conns]["ms"] - results["iterator"]["floor_ms"], 1e-9)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"kernel": os.uname().release, "runs": args.runs, "paths": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
