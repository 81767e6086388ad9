#!/usr/bin/python3
"""Local socket acceleration benchmark: plain loopback TCP, the naive
sockops + sk_msg pair (tests/bench/naive.bpf.c) and sonic, measured in one
run, modes interleaved run by run, medians reported with ratios.

Rows:
  ping-pong latency, sockperf 64 B (unpinned, and pinned to two CPUs / one CPU)
  ping-pong latency, pingpong.c over TCP and over a pipe (the IPC floor)
  bulk throughput, iperf3 (server on [::] as by default, and on 127.0.0.1)
  the lab's proxy path: client -> socat relay -> server, latency and throughput

Needs root. Every cgroup, bpffs directory and process it makes is removed on
exit, also on failure or Ctrl-C.
"""
import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
MODES = ("plain", "naive", "sonic")


def cgroup2_root():
    with open("/proc/self/mounts") as f:
        for line in f:
            fs = line.split()
            if fs[2] == "cgroup2":
                return fs[1]
    sys.exit("no cgroup2 mount")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sh(*argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


class Bench:
    def __init__(self, args):
        self.args = args
        self.tag = "sonic-bench-%d-%s" % (os.getpid(), secrets.token_hex(3))
        self.tmp = tempfile.mkdtemp(prefix=self.tag)
        self.cg = {m: os.path.join(cgroup2_root(), "%s-%s" % (self.tag, m)) for m in MODES}
        self.sonic_bpffs = "/sys/fs/bpf/%s-sonic" % self.tag
        self.naive_bpffs = "/sys/fs/bpf/%s-naive" % self.tag
        self.procs = []

    # -- setup / teardown ------------------------------------------------
    def setup(self):
        for path in self.cg.values():
            os.mkdir(path)
        sh("cc", "-O2", "-o", os.path.join(self.tmp, "pingpong"), os.path.join(HERE, "pingpong.c"))
        obj = os.path.join(self.tmp, "naive.bpf.o")
        multiarch = sh("cc", "-print-multiarch").stdout.strip()
        sh("clang", "-O2", "-g", "-target", "bpf", "-idirafter", "/usr/include/" + multiarch,
           "-c", os.path.join(HERE, "naive.bpf.c"), "-o", obj)
        os.makedirs(self.naive_bpffs)
        sh("bpftool", "prog", "loadall", obj, self.naive_bpffs + "/prog", "pinmaps", self.naive_bpffs + "/map")
        sh("bpftool", "cgroup", "attach", self.cg["naive"], "sock_ops", "pinned", self.naive_bpffs + "/prog/naive_sockops")
        sh("bpftool", "prog", "attach", "pinned", self.naive_bpffs + "/prog/naive_msg", "msg_verdict",
           "pinned", self.naive_bpffs + "/map/naive_socks")
        sh(self.args.sonic, "--bpffs", self.sonic_bpffs, "-q", "accel", "enable", "cgroup", self.cg["sonic"])

    def teardown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for path in self.cg.values():
            if os.path.isdir(path):
                for _ in range(100):
                    try:
                        for pid in open(path + "/cgroup.procs").read().split():
                            os.kill(int(pid), signal.SIGKILL)
                        os.rmdir(path)
                        break
                    except (OSError, ProcessLookupError):
                        time.sleep(0.05)
        subprocess.run([self.args.sonic, "--bpffs", self.sonic_bpffs, "-q", "prog", "unload", "--force"],
                       capture_output=True)
        shutil.rmtree(self.naive_bpffs, ignore_errors=True)
        shutil.rmtree(self.sonic_bpffs, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- processes ---------------------------------------------------------
    def start(self, mode, argv, cpu=None):
        cg = self.cg[mode]
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv

        def enter():
            with open(cg + "/cgroup.procs", "w") as f:
                f.write(str(os.getpid()))
        p = subprocess.Popen(argv, preexec_fn=enter, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(p)
        return p

    def run(self, mode, argv, cpu=None, timeout=120):
        p = self.start(mode, argv, cpu)
        out, _ = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError("%s failed: %s" % (" ".join(argv), out[-400:]))
        return out

    def stop(self, p):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    @staticmethod
    def wait_listen(port, seconds=5):
        # Looks at the socket table: a probing connect would use up
        # iperf3 -s -1's only session.
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            out = subprocess.run(["ss", "-Hltn", "sport = :%d" % port], capture_output=True, text=True).stdout
            if out.strip():
                return
            time.sleep(0.02)
        raise RuntimeError("nothing listens on %d" % port)

    # -- measurements ------------------------------------------------------
    def sockperf(self, mode, scpu=None, ccpu=None, via_relay=False):
        port = free_port()
        server = self.start(mode, ["sockperf", "server", "--tcp", "-i", "127.0.0.1", "-p", str(port)], scpu)
        target = port
        relay = None
        try:
            self.wait_listen(port)
            if via_relay:
                target = free_port()
                relay = self.start(mode, ["socat", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork" % target,
                                          "TCP:127.0.0.1:%d,nodelay" % port])
                self.wait_listen(target)
            out = self.run(mode, ["sockperf", "ping-pong", "--tcp", "-i", "127.0.0.1", "-p", str(target), "-m", "64",
                                  "-t", str(self.args.seconds)], ccpu)
        finally:
            if relay:
                self.stop(relay)
            self.stop(server)
        lost = re.search(r"# dropped messages = (\d+); # duplicated messages = (\d+); # out-of-order messages = (\d+)",
                         out)
        if lost and any(int(x) for x in lost.groups()):
            raise RuntimeError("sockperf (%s): %s" % (mode, lost.group(0)))
        p50 = float(re.search(r"percentile 50\.000 =\s+([\d.]+)", out).group(1))
        p99 = float(re.search(r"percentile 99\.000 =\s+([\d.]+)", out).group(1))
        return p50, p99

    def pingpong(self, mode, kind):
        out = self.run(mode, [os.path.join(self.tmp, "pingpong"), kind, str(self.args.messages), "64", "0", "1"])
        p50, p99 = (float(x) for x in out.split())
        return p50, p99

    def iperf(self, mode, bind_v4, via_relay=False):
        port = free_port()
        argv = ["iperf3", "-s", "-1", "-p", str(port)]
        if bind_v4:
            argv += ["-B", "127.0.0.1"]
        server = self.start(mode, argv)
        relay = None
        target = port
        try:
            self.wait_listen(port)
            if via_relay:
                target = free_port()
                relay = self.start(mode, ["socat", "-b", "131072",
                                          "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork" % target,
                                          "TCP:127.0.0.1:%d" % port])
                self.wait_listen(target)
            out = self.run(mode, ["iperf3", "-c", "127.0.0.1", "-p", str(target), "-t", str(self.args.seconds), "-J"])
        finally:
            if relay:
                self.stop(relay)
            self.stop(server)
        report = json.loads(out)
        if "error" in report:
            raise RuntimeError("iperf3 (%s): %s" % (mode, report["error"]))
        return report["end"]["sum_received"]["bits_per_second"] / 1e9

    def program_cost(self):
        """ns per sk_msg run of the naive program and of sonic's, from the
        kernel's BPF run-time statistics, enabled only for this step (they
        tax every program run)."""
        path = "/proc/sys/kernel/bpf_stats_enabled"
        saved = open(path).read().strip()
        progs = {"naive": self.naive_bpffs + "/prog/naive_msg", "sonic": self.sonic_bpffs + "/prog/accel_msg"}

        def sample(prog):
            d = json.loads(sh("bpftool", "-j", "prog", "show", "pinned", prog).stdout)
            return d.get("run_cnt", 0), d.get("run_time_ns", 0)
        cost = {}
        try:
            with open(path, "w") as f:
                f.write("1")
            for mode, prog in progs.items():
                c0, t0 = sample(prog)
                self.pingpong(mode, "tcp")
                c1, t1 = sample(prog)
                cost[mode] = (t1 - t0) / max(c1 - c0, 1)
        finally:
            with open(path, "w") as f:
                f.write(saved)
        return cost

    def sonic_stats(self):
        out = sh(self.args.sonic, "--bpffs", self.sonic_bpffs, "-j", "stats", "accel").stdout
        return json.loads(out)["accel"]


# name, unit, better, function(bench, mode) -> value or (p50, p99)
def rows(args):
    r = [
        ("sockperf ping-pong, unpinned", "us", "lat", lambda b, m: b.sockperf(m)),
        ("sockperf ping-pong, CPUs 0/1", "us", "lat", lambda b, m: b.sockperf(m, 0, 1)),
        ("sockperf ping-pong, one CPU", "us", "lat", lambda b, m: b.sockperf(m, 0, 0)),
        ("pingpong.c TCP, CPUs 0/1", "us", "lat", lambda b, m: b.pingpong(m, "tcp")),
        ("iperf3, server on [::]", "Gbit/s", "tput", lambda b, m: b.iperf(m, False)),
        ("iperf3, server on 127.0.0.1", "Gbit/s", "tput", lambda b, m: b.iperf(m, True)),
        ("relay path ping-pong (socat)", "us", "lat", lambda b, m: b.sockperf(m, via_relay=True)),
        ("relay path iperf3 (socat)", "Gbit/s", "tput", lambda b, m: b.iperf(m, True, via_relay=True)),
    ]
    if args.only:
        r = [x for x in r if any(o in x[0] for o in args.only.split(","))]
    return r


def fmt_ratio(kind, sonic, other):
    if not other:
        return "-"
    ratio = sonic / other
    if kind == "lat":
        return "%.2fx (%+.0f%%)" % (ratio, (ratio - 1) * 100)
    return "%.2fx" % ratio


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sonic", default=os.path.join(TOP, "build", "sonic"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--messages", type=int, default=50000)
    ap.add_argument("--only", help="comma-separated substrings of row names")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("accel benchmark: needs root")
    if not os.access(args.sonic, os.X_OK):
        sys.exit("accel benchmark: build sonic first (%s)" % args.sonic)

    bench = Bench(args)
    results = {}
    failures = {}  # row -> mode -> why each failed run failed (socket errors, lost messages)
    floor = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        bench.setup()
        for run in range(args.runs):
            for name, unit, kind, fn in rows(args):
                for mode in (MODES if run % 2 == 0 else tuple(reversed(MODES))):
                    try:
                        v = fn(bench, mode)
                    except (RuntimeError, ValueError, AttributeError, KeyError, subprocess.SubprocessError) as e:
                        failures.setdefault(name, {}).setdefault(mode, []).append(str(e).splitlines()[0][:120])
                        print("run %d  %-30s %-6s FAILED: %s" % (run + 1, name, mode, e), file=sys.stderr, flush=True)
                        continue
                    results.setdefault(name, {}).setdefault(mode, []).append(v)
                    print("run %d  %-30s %-6s %s" % (run + 1, name, mode, v), file=sys.stderr, flush=True)
            if not args.only or "pingpong" in args.only:
                floor.append(bench.pingpong("plain", "pipe"))
        stats = bench.sonic_stats()
        cost = bench.program_cost()
    finally:
        bench.teardown()

    def med(values, i=None):
        if not values:
            return float("nan")
        return statistics.median(v[i] if i is not None else v for v in values)

    uname = os.uname()
    print()
    print("sonic accel benchmark: Linux %s, %d CPUs, %d runs of %d s each, medians (modes interleaved)"
          % (uname.release, os.cpu_count(), args.runs, args.seconds))
    print()
    print("A row with a failed run (a socket error, sockperf losing messages) is FAILED: its numbers leave it out.")
    head = "%-34s %-6s %10s %10s %10s  %-16s %-16s %s" % ("", "", "plain", "naive", "sonic", "sonic/plain",
                                                         "sonic/naive", "errors")
    print(head)
    print("-" * len(head))
    table = []
    for name, unit, kind, _ in rows(args):
        res = results.get(name, {})
        failed = failures.get(name, {})
        errors = ("FAILED: " + ", ".join("%s %d run(s): %s" % (m, len(w), w[0]) for m, w in failed.items())
                  if failed else "0")
        parts = [("p50", 0), ("p99", 1)] if kind == "lat" else [("", None)]
        for label, idx in parts:
            vals = {m: med(res.get(m, []), idx) for m in MODES}
            line = "%-34s %-6s %10.2f %10.2f %10.2f  %-16s %-16s %s" % (
                (name + " " + label).strip(), unit, vals["plain"], vals["naive"], vals["sonic"],
                fmt_ratio(kind, vals["sonic"], vals["plain"]), fmt_ratio(kind, vals["sonic"], vals["naive"]), errors)
            print(line)
            table.append({"row": (name + " " + label).strip(), "unit": unit, "failed": failed, **vals})
    if floor:
        pipe50 = statistics.median(f[0] for f in floor)
        tcp50 = med(results.get("pingpong.c TCP, CPUs 0/1", {}).get("plain", []), 0)
        print("%-34s %-6s %10.2f %10s %10s  %-16s" % ("pipe ping-pong (IPC floor) p50", "us", pipe50, "", "",
                                                       fmt_ratio("lat", pipe50, tcp50)))
        table.append({"row": "pipe floor p50", "unit": "us", "pipe": pipe50})
    print("%-34s %-6s %10s %10.0f %10.0f  %-16s" % ("sk_msg program run time", "ns", "-", cost["naive"],
                                                   cost["sonic"], "+%.0f ns/message" % (cost["sonic"] - cost["naive"])))
    print()
    print("sonic counters over the run: %d sockets inserted, %d redirects, %.1f GiB redirected, %d misses"
          % (stats["inserted"], stats["redirects"], stats["redirect_bytes"] / 2**30, stats["misses"]))
    print("targets: p50 latency >= 30% below plain; bulk throughput >= 1.0x plain")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": table, "raw": results, "pipe_floor": floor, "sonic": stats, "program_ns": cost}, f,
                      indent=1)


if __name__ == "__main__":
    main()
