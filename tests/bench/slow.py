#!/usr/bin/python3
"""Slow-client benchmark: what slowhttptest's attacks do to a normal client.

For each proxy (sonic run --workers 1, nginx proxy_pass with 1 worker, both
in front of the same nginx origin) and each attack:
  none       wrk -t1 -c10 alone
  slowloris  slowhttptest -H: connections that send a header line every
             10 s and never end their head
  slowbody   slowhttptest -B: POSTs whose body comes a few bytes every 10 s
  sink       slowhttptest -B aimed at a socket that listens and never
             accepts, not at the proxy: the kernel holds its connections.
             What the attacker itself costs the normal client (it shares
             the client's CPU), with no work for the proxy; a control
  reader     slowhttptest -B aimed at a second sonic on the proxy's CPU at
             idle priority (SCHED_IDLE), which the normal client never
             uses: what delivering the attack's bytes to any process costs
             the normal client (the attacker's sends, the kernel's receive
             path and wakeups, the reads), with no work for the measured
             proxy and no claim on its CPU; a control. slowhttptest sends
             every connection's next piece in one burst (3000 sends within
             ~200 ms every 10 s), so this cost lands on the requests of
             those 200 ms: about 2% of a row, enough to move its p99
the attack first ramps up to --connections at --rate per second, then wrk
measures the normal client for --seconds while the attack holds them.
Rows are interleaved run by run; "vs none" is the row's p99 over the same
proxy's p99 without attack in the same run, median over the runs. "held"
is how many connections the proxy had open when wrk ended (the attack's
and wrk's). Target: no non-2xx and no socket error in any row, and p99
under attack at most 2x the p99 without.

CPU placement on this 2-CPU machine: the proxy owns CPU 0; wrk, the origin
and slowhttptest share CPU 1. Proxies keep their default timeouts (sonic:
client_header 10 s, client_body 60 s; nginx: 60 s each).

  tests/bench/slow.sh [--runs N] [--seconds S] [--connections C] [--rate R]
                      [--only sonic,nginx]
"""
import argparse
import os
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

from benchlib import (established_to, failed_mark, free_port, nginx_conf, origin_block, proxy_block,  # noqa: E402
                      raise_nofile, stop_process, wait_accepting, wrk)

PROXY_CPU = "0"
LOAD_CPU = "1"
ATTACKS = {"none": None, "slowloris": "-H", "slowbody": "-B", "sink": "-B", "reader": "-B"}
CONTROLS = ("sink", "reader")  # attacks aimed elsewhere than the measured proxy
TARGET = 2.0  # p99 under attack over p99 without, at most


class SlowBench:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="sonic-bench-slow-")
        self.procs = {}
        self.ports = {}
        self.notes = []
        # The control attack's target: a listener with room for every
        # connection in its accept queue, never accepted.
        self.sink = socket.socket()
        self.sink.bind(("127.0.0.1", 0))
        self.sink.listen(8192)
        self.sink.setblocking(False)

    def spawn(self, name, argv, cpu, port=None, **kw):
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        p = subprocess.Popen(["taskset", "-c", cpu] + argv, stdout=kw.pop("stdout", log), stderr=log,
                             stdin=subprocess.DEVNULL, preexec_fn=raise_nofile, **kw)
        self.procs[name] = p
        if port:
            try:
                wait_accepting(port, p, name)
            except RuntimeError as e:
                with open(os.path.join(self.tmp, name + ".log"), errors="replace") as f:
                    raise RuntimeError("%s: %s" % (e, f.read()[-1500:]))
        return p

    def stop(self, name):
        stop_process(self.procs.pop(name, None), grace=10)

    def cleanup(self):
        for name in list(self.procs):
            self.stop(name)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.sink.close()

    def empty_sink(self):
        """Takes and closes what the control left in the sink's queue."""
        while True:
            try:
                c, _ = self.sink.accept()
            except BlockingIOError:
                return
            c.close()

    def start_servers(self, proxies):
        self.ports["origin"] = free_port()
        conf = nginx_conf(os.path.join(self.tmp, "origin"),
                          origin_block(self.ports["origin"], os.path.join(self.tmp, "www")))
        self.spawn("origin", ["nginx", "-c", conf], LOAD_CPU, self.ports["origin"])
        if "nginx" in proxies:
            self.ports["nginx"] = free_port()
            conf = nginx_conf(os.path.join(self.tmp, "nginx"), proxy_block(self.ports["nginx"], self.ports["origin"]))
            self.spawn("nginx", ["nginx", "-c", conf], PROXY_CPU, self.ports["nginx"])
        for name in ["sonic"] * ("sonic" in proxies) + ["reader"]:
            self.ports[name] = free_port()
            idle = ["chrt", "--idle", "0"] if name == "reader" else []
            self.spawn(name, idle + [self.args.sonic, "run", "--mode", "reverse", "--listen",
                                     "127.0.0.1:%d" % self.ports[name], "--upstream",
                                     "127.0.0.1:%d" % self.ports["origin"], "--workers", "1"],
                       PROXY_CPU, self.ports[name])

    def settle(self, port, budget=90):
        """Waits until the proxy holds no connection from an earlier row
        (timeouts close what the attack left)."""
        deadline = time.time() + budget
        while established_to(port) > 0 and time.time() < deadline:
            time.sleep(0.5)

    def one(self, proxy, attack):
        port = self.ports[proxy]
        self.settle(port)
        url = "http://127.0.0.1:%d/" % port
        target = {"sink": "http://127.0.0.1:%d/" % self.sink.getsockname()[1],
                  "reader": "http://127.0.0.1:%d/" % self.ports.get("reader", 0)}.get(attack, url)
        name = "attack"
        if ATTACKS[attack]:
            ramp = self.args.connections / self.args.rate + 3
            length = int(ramp + self.args.seconds + 5)
            self.spawn(name, ["nice", "-n", "19", "slowhttptest", ATTACKS[attack], "-c", str(self.args.connections), "-r",
                              str(self.args.rate), "-i", "10", "-l", str(length), "-p", "5", "-u", target],
                       LOAD_CPU)
            time.sleep(ramp)
        try:
            result = wrk(url, 10, self.args.seconds, LOAD_CPU)
            result.held = established_to(port)
        finally:
            self.stop(name)
            if attack == "sink":
                self.empty_sink()
            if attack == "reader":
                self.settle(self.ports["reader"])
        return result

    def main(self):
        proxies = [p for p in ("sonic", "nginx") if p in self.args.only.split(",")]
        self.start_servers(proxies)
        # Warm each proxy (its pool, its buffers, the origin's first
        # connections) before the first row: a cold first "none" row would
        # make every ratio of run 1 look better than it is.
        for proxy in proxies:
            wrk("http://127.0.0.1:%d/" % self.ports[proxy], 10, 3, LOAD_CPU)
        results = {(p, a): [] for p in proxies for a in ATTACKS}
        ratios = {(p, a): [] for p in proxies for a in ATTACKS if ATTACKS[a]}
        for run in range(self.args.runs):
            for proxy in proxies:
                base = None
                for attack in ATTACKS:
                    if self.procs[proxy].poll() is not None:
                        self.notes.append("%s exited during run %d" % (proxy, run + 1))
                        break
                    r = self.one(proxy, attack)
                    results[(proxy, attack)].append(r)
                    if attack == "none":
                        base = r
                    elif base and base.p99:
                        ratios[(proxy, attack)].append(r.p99 / base.p99)
                    if r.failed:
                        self.notes.append("%s %s run %d: %s" % (proxy, attack, run + 1, r.problems()))
                    print("  run %d %-6s %-9s %8.0f rps  p99 %7.2f ms  held %5d  %s"
                          % (run + 1, proxy, attack, r.rps, r.p99, r.held, r.problems()), file=sys.stderr)
        self.report(proxies, results, ratios)

    def report(self, proxies, results, ratios):
        print("\nA normal client (wrk -t1 -c10, %d x %d s) through one worker while slowhttptest holds %d "
              "connections (ramped at %d/s)" % (self.args.runs, self.args.seconds, self.args.connections,
                                                self.args.rate))
        print("medians; vs none: p99 over the same proxy's p99 without attack, run by run; target <= %.0fx, "
              "no errors" % TARGET)
        print("%-6s %-10s %9s %9s %9s %8s %9s %9s  %s" % ("proxy", "attack", "rps", "p50 ms", "p99 ms", "held",
                                                       "non-2xx", "vs none", "verdict"))
        for proxy in proxies:
            for attack in ATTACKS:
                runs = results[(proxy, attack)]
                if not runs:
                    continue
                ratio = statistics.median(ratios[(proxy, attack)]) if ratios.get((proxy, attack)) else None
                bad = failed_mark(runs)
                verdict = bad or ("" if ratio is None else "(control)" if attack in CONTROLS
                                  else "ok" if ratio <= TARGET else "over %.0fx" % TARGET)
                print("%-6s %-10s %9.0f %9.2f %9.2f %8.0f %9d %9s  %s"
                      % (proxy, attack, statistics.median(r.rps for r in runs),
                         statistics.median(r.p50 for r in runs), statistics.median(r.p99 for r in runs),
                         statistics.median(r.held for r in runs), sum(r.non2xx for r in runs),
                         "%.2fx" % ratio if ratio is not None else "-", verdict))
        if self.notes:
            print("\nnotes:")
            for n in self.notes:
                print("  " + n)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=3000)
    ap.add_argument("--rate", type=int, default=300)
    ap.add_argument("--only", default="sonic,nginx")
    ap.add_argument("--sonic", default=os.environ.get("SONIC_BIN", os.path.join(TOP, "build", "sonic")))
    args = ap.parse_args()
    for tool in ("wrk", "nginx", "slowhttptest", "taskset", "chrt"):
        if not shutil.which(tool):
            sys.exit("missing %s: run packaging/install-deps" % tool)
    b = SlowBench(args)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    try:
        b.main()
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()
