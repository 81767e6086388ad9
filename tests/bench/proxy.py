#!/usr/bin/python3
"""HTTP proxy benchmark: one origin, one worker each, wrk on loopback.

Rows (interleaved run by run, medians of --runs runs of --seconds each):
  origin    nginx serving a small static file directly (1 worker)
  nginx     nginx proxy_pass with upstream keepalive (1 worker)
  haproxy   HAProxy, nbthread 1, mode http, keep-alive to the server
  sonic     sonic run --mode reverse --workers 1
  ROW+accel the same, with wrk, the origin and the proxy in a fresh cgroup
            under `sonic accel enable` (sockops + sk_msg on every local
            connection); shows what sonic's data plane gives any proxy
  ROW+legs  the same, in a fresh cgroup under `sonic accel enable scope
            proxy`: only connections with a sonic proxy at one end are
            accelerated, so nginx+legs and haproxy+legs are the control
            (plain stack) and sonic+legs is sonic with its own data plane

CPU placement on this 2-CPU machine: the server being measured owns CPU 0
(the proxy in the proxy rows, the origin in the origin row); wrk, and the
origin in proxy rows, share CPU 1. Every proxy row pays the same origin.

Then:
  l4        iperf3 through a sonic TCP route vs HAProxy mode tcp (and
            direct), with each proxy's CPU time from /proc/PID/stat
  idle      10,000 idle keep-alive client connections held by each proxy,
            its RSS reported (RLIMIT_NOFILE raised here, inherited)

Temporary configs live under one mktemp -d directory, removed on exit,
with every process this script started.

  tests/bench/proxy.sh [--runs N] [--seconds S] [--connections C]
                       [--only origin,nginx,haproxy,sonic,ROW+accel,ROW+legs,l4,idle] [--idle-conns N]
"""
import argparse
import json
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))

import sonicconf  # noqa: E402
import sonictest  # noqa: E402
from benchlib import (NOFILE, children, cpu_busy, cpu_seconds, enter, failed_mark, free_port,  # noqa: E402
                      nginx_conf, origin_block, proxy_block, raise_nofile, stop_process,
                      tree_cpu_seconds, wait_accepting, wrk)

PROXY_CPU = "0"
LOAD_CPU = "1"
HTTP_ROWS = ("origin", "nginx", "haproxy", "sonic")
# Variant suffix -> the scope of its cgroup's `sonic accel enable`.
VARIANTS = {"+accel": "all", "+legs": "proxy"}
ALL_ROWS = HTTP_ROWS + tuple(r + v for v in VARIANTS for r in HTTP_ROWS)


def variant_of(name):
    """"+accel" of "nginx+accel", "" of "nginx"."""
    plus, suffix = name.partition("+")[1:]
    return plus + suffix


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="sonic-bench-proxy-")
        self.procs = {}
        self.ports = {}
        self.notes = []
        self.by_run = {}   # row -> {run: wrk result}, for ratios paired by run
        self.cgroups = {}  # variant -> its cgroup
        self.bpffs = {}    # variant -> its bpffs root

    # -- processes --------------------------------------------------------
    def spawn(self, name, argv, cpu, port=None, **kw):
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        cgroup = self.cgroups.get(variant_of(name))
        p = subprocess.Popen(["taskset", "-c", cpu] + argv, stdout=kw.pop("stdout", log), stderr=log,
                             stdin=subprocess.DEVNULL, preexec_fn=lambda: enter(cgroup), **kw)
        self.procs[name] = p
        if port:
            try:
                wait_accepting(port, p, name)
            except RuntimeError as e:
                with open(os.path.join(self.tmp, name + ".log"), errors="replace") as f:
                    raise RuntimeError("%s: %s" % (e, f.read()[-1500:]))
        return p

    def stop(self, name):
        stop_process(self.procs.pop(name, None))

    def cleanup(self):
        for name in list(self.procs):
            self.stop(name)
        for v, cgroup in self.cgroups.items():
            sonictest.remove_cgroup(cgroup)
            sonictest.remove_bpffs_root(self.bpffs[v], self.args.sonic)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_variant(self, variant):
        """A fresh cgroup with sonic's socket acceleration on it in the
        variant's scope, and its own bpffs root, so the host's sonic (if
        any) is untouched."""
        self.bpffs[variant] = "/sys/fs/bpf/" + sonictest.unique("sonic-bench-proxy")
        cgroup = sonictest.make_cgroup("sonic-bench-proxy")
        self.cgroups[variant] = cgroup
        subprocess.run([self.args.sonic, "--bpffs", self.bpffs[variant], "-q", "accel", "enable", "cgroup", cgroup,
                        "scope", VARIANTS[variant]], check=True, capture_output=True, text=True)

    def accel_stats(self, variant):
        r = subprocess.run([self.args.sonic, "--bpffs", self.bpffs[variant], "-j", "stats", "accel"],
                           capture_output=True, text=True)
        return json.loads(r.stdout) if r.returncode == 0 else {}

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # -- servers ----------------------------------------------------------
    def nginx_conf(self, name, server_block):
        return nginx_conf(os.path.join(self.tmp, name), server_block)

    def start_origin(self, variant=""):
        name = "origin" + variant
        port = free_port()
        conf = self.nginx_conf(name, origin_block(port, os.path.join(self.tmp, "www")))
        self.ports[name] = port
        # In proxy rows the origin shares CPU 1 with wrk; the origin row
        # moves it to CPU 0 while it is measured alone.
        self.spawn(name, ["nginx", "-c", conf, "-e", os.path.join(self.tmp, name, "error.log")], LOAD_CPU, port)

    def start_nginx(self, variant=""):
        name = "nginx" + variant
        port = free_port()
        conf = self.nginx_conf(name, proxy_block(port, self.ports["origin" + variant]))
        self.ports[name] = port
        self.spawn(name, ["nginx", "-c", conf, "-e", os.path.join(self.tmp, name, "error.log")], PROXY_CPU, port)

    def haproxy_conf(self, name, mode, port, server_port):
        return self.write(name + ".cfg", textwrap.dedent("""\
            global
                nbthread 1
                maxconn {maxconn}
                ulimit-n {nofile}
            defaults
                mode {mode}
                timeout connect 5s
                timeout client 300s
                timeout server 300s
                {http}
            frontend fe
                bind 127.0.0.1:{p}
                default_backend be
            backend be
                {reuse}
                server s1 127.0.0.1:{o}
            """).format(mode=mode, p=port, o=server_port, nofile=NOFILE,
                        maxconn=self.haproxy_maxconn(),
                        http="option http-keep-alive" if mode == "http" else "",
                        reuse="http-reuse always" if mode == "http" else ""))

    def haproxy_maxconn(self):
        """HAProxy 2.6 refuses to start when 2 x maxconn exceeds its FD
        limit, so under a low hard limit it holds fewer idle clients."""
        cap = (NOFILE - 100) // 2
        if cap < self.args.idle_conns:
            note = "haproxy: maxconn %d (FD hard limit %d), so it cannot hold %d idle clients" % (
                cap, NOFILE, self.args.idle_conns)
            if note not in self.notes:
                self.notes.append(note)
        return min(cap, self.args.idle_conns + 200)

    def start_haproxy(self, variant="", name=None, mode="http", server_port=None):
        name = name or "haproxy" + variant
        port = free_port()
        conf = self.haproxy_conf(name, mode, port, server_port or self.ports["origin" + variant])
        self.ports[name] = port
        self.spawn(name, ["haproxy", "-f", conf, "-db"], PROXY_CPU, port)

    def start_sonic(self, variant="", name=None, config=None):
        name = name or "sonic" + variant
        if config is None:
            port = free_port()
            # A variant's sonic records its listener in that variant's bpffs.
            argv = [self.args.sonic] + (["--bpffs", self.bpffs[variant]] if variant else []) + [
                "run", "--mode", "reverse", "--listen", "127.0.0.1:%d" % port,
                "--upstream", "127.0.0.1:%d" % self.ports["origin" + variant], "--workers", "1"]
        else:
            port = config.listen_port
            argv = [self.args.sonic, "run", "--config", config.write(self.tmp)]
        self.ports[name] = port
        # Its access log goes to /dev/null (nginx and HAProxy log nothing here).
        self.spawn(name, argv, PROXY_CPU, port, stdout=subprocess.DEVNULL)

    # -- wrk --------------------------------------------------------------
    def wrk(self, port, server=None, variant=""):
        """A benchlib.Wrk, with the measured server's CPU us per request
        (us_per_req) and CPU 1's busy share (load_share), which show which
        side was the bottleneck. In a VARIANT, wrk runs in its cgroup like
        the servers."""
        cpu0 = tree_cpu_seconds(server.pid) if server else 0.0
        busy0 = cpu_busy()
        cgroup = self.cgroups.get(variant)
        r = wrk("http://127.0.0.1:%d/" % port, self.args.connections, self.args.seconds, LOAD_CPU,
                preexec_fn=lambda: enter(cgroup))
        busy1 = cpu_busy()
        r.us_per_req = (tree_cpu_seconds(server.pid) - cpu0) * 1e6 / r.requests if server and r.requests else 0.0
        load = busy1[LOAD_CPU][0] - busy0[LOAD_CPU][0]
        r.load_share = load / max(1, busy1[LOAD_CPU][1] - busy0[LOAD_CPU][1])
        return r

    def pin(self, name, cpu):
        pid = self.procs[name].pid
        subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(pid)], capture_output=True)
        for child in children(pid):
            subprocess.run(["taskset", "-p", "-c", cpu, str(child)], capture_output=True)

    def http_rows(self, rows):
        started = []
        for row in rows:
            name, variant = row.partition("+")[0], variant_of(row)
            try:
                if variant and variant not in self.cgroups:
                    self.start_variant(variant)
                if "origin" + variant not in self.procs:
                    self.start_origin(variant)
                if name != "origin":
                    getattr(self, "start_" + name)(variant)
                started.append(row)
            except Exception as e:  # a row that cannot start is reported, not fatal
                self.notes.append("%s: not measured: %s" % (row, " | ".join(str(e).splitlines()[-3:])))
        results = {r: [] for r in started}
        for run in range(self.args.runs):
            for row in started:
                if self.procs[row].poll() is not None:
                    self.notes.append("%s: exited during run %d" % (row, run + 1))
                    continue
                if row.startswith("origin"):
                    # The origin measured alone owns CPU 0, like the proxies do.
                    self.pin(row, PROXY_CPU)
                    res = self.wrk(self.ports[row], self.procs[row], variant_of(row))
                    self.pin(row, LOAD_CPU)
                else:
                    res = self.wrk(self.ports[row], self.procs[row], variant_of(row))
                if res.failed:
                    self.notes.append("%s run %d: %s" % (row, run + 1, res.problems()))
                results[row].append(res)
                self.by_run.setdefault(row, {})[run] = res
                print("  run %d %-13s %9.0f rps  p50 %6.2f ms  p99 %6.2f ms  %5.1f us/req  CPU1 %3.0f%%  %s"
                      % (run + 1, row, res.rps, res.p50, res.p99, res.us_per_req, res.load_share * 100,
                         res.problems()), file=sys.stderr)
        return results

    def paired(self, row, ref, i):
        """Median over the runs of ROW's value I divided by REF's in the same
        run: rows measured seconds apart share the machine's slow phases,
        which a ratio of medians taken minutes apart does not cancel."""
        a, b = self.by_run.get(row, {}), self.by_run.get(ref, {})
        ratios = [getattr(a[r], i) / getattr(b[r], i) for r in a if r in b and getattr(b[r], i)]
        return statistics.median(ratios) if ratios else None

    def print_http(self, results):
        med = {r: tuple(statistics.median(getattr(x, i) for x in v)
                        for i in ("rps", "p50", "p99", "us_per_req", "load_share"))
               for r, v in results.items() if v}
        print("\nHTTP/1.1 through one worker, wrk -t1 -c%d, %d x %d s, medians"
              % (self.args.connections, self.args.runs, self.args.seconds))
        print("CPU 0: the server measured (proxy, or origin in the origin row); CPU 1: wrk + origin")
        print("CPU us/req: the measured server's own CPU time per request; CPU 1: how busy the load side was")
        print("+accel rows: wrk, origin and proxy in one cgroup under `sonic accel enable` (every local")
        print("connection); +legs rows: the same under `sonic accel enable scope proxy` (only connections")
        print("with a sonic proxy at one end). Ratios are against the nginx and origin of the same variant,")
        print("taken run by run (each row against its reference of the same run), then the median.")
        print("A row whose wrk runs saw any non-2xx response or socket error is FAILED.")
        print("%-13s %10s %9s %9s %9s %10s %11s %11s %7s  %s" % ("row", "rps", "p50 ms", "p99 ms", "vs nginx",
                                                               "vs origin", "p99/nginx", "CPU us/req", "CPU 1",
                                                               "errors"))
        for row in ALL_ROWS:
            if row not in med:
                continue
            variant = variant_of(row)
            rps, p50, p99, us, load = med[row]
            fmt = lambda x: "%.2fx" % x if x is not None else "-"  # noqa: E731
            vs_nginx = fmt(self.paired(row, "nginx" + variant, "rps"))
            vs_origin = fmt(self.paired(row, "origin" + variant, "rps"))
            p99_ratio = fmt(self.paired(row, "nginx" + variant, "p99"))
            print("%-13s %10.0f %9.2f %9.2f %9s %10s %11s %11.1f %6.0f%%  %s"
                  % (row, rps, p50, p99, vs_nginx, vs_origin, p99_ratio, us, load * 100,
                     failed_mark(results[row]) or "0"))
        for row in ("sonic+legs", "sonic+accel"):
            if row in med and "nginx" in med:
                print("%s against plain nginx: %.2fx rps, p99 %.2fx (paired by run)"
                      % (row, self.paired(row, "nginx", "rps"), self.paired(row, "nginx", "p99")))
        for v in self.cgroups:
            st = self.accel_stats(v).get("accel", {})
            print("accel counters over the %s rows: inserted %s, skipped_not_proxy %s, redirects %s, misses %s, "
                  "overflows %s" % (v, st.get("inserted"), st.get("skipped_not_proxy"), st.get("redirects"),
                                    st.get("misses"), st.get("overflows")))
        return med

    # -- L4 ---------------------------------------------------------------
    def iperf(self, port):
        r = subprocess.run(["taskset", "-c", LOAD_CPU, "iperf3", "-J", "-c", "127.0.0.1", "-p", str(port),
                            "-t", str(self.args.seconds)], capture_output=True, text=True,
                           timeout=self.args.seconds + 60)
        j = json.loads(r.stdout)
        if "error" in j:
            raise RuntimeError(j["error"])
        return j["end"]["sum_received"]["bits_per_second"] / 1e9

    def l4(self):
        port = free_port()
        self.spawn("iperf3", ["iperf3", "-s", "-p", str(port), "-B", "127.0.0.1"], LOAD_CPU, port)
        rows = {"direct": (port, None)}
        try:
            self.start_haproxy(name="haproxy_tcp", mode="tcp", server_port=port)
            rows["haproxy"] = (self.ports["haproxy_tcp"], self.procs["haproxy_tcp"].pid)
        except Exception as e:
            self.notes.append("l4 haproxy: not measured: %s" % str(e).splitlines()[0])
        try:
            self.start_sonic(name="sonic_tcp", config=sonicconf.Config().tcp_route("127.0.0.1:%d" % port))
            rows["sonic"] = (self.ports["sonic_tcp"], self.procs["sonic_tcp"].pid)
        except Exception as e:
            self.notes.append("l4 sonic: not measured: %s" % str(e).splitlines()[0])
        results = {r: [] for r in rows}
        for run in range(self.args.runs):
            for row, (p, pid) in rows.items():
                cpu0, t0 = (cpu_seconds(pid) if pid else 0), time.time()
                try:
                    gbps = self.iperf(p)
                except Exception as e:
                    self.notes.append("l4 %s run %d: %s" % (row, run + 1, e))
                    continue
                cpu = (cpu_seconds(pid) - cpu0) / (time.time() - t0) if pid else 0
                results[row].append((gbps, cpu))
                print("  run %d l4 %-8s %6.2f Gbit/s  proxy CPU %5.1f%%" % (run + 1, row, gbps, cpu * 100),
                      file=sys.stderr)
        print("\nL4 TCP, iperf3 -t %d through one worker, %d runs, medians" % (self.args.seconds, self.args.runs))
        print("%-9s %10s %12s %14s %12s" % ("row", "Gbit/s", "proxy CPU", "Gbit/CPU-s", "vs haproxy"))
        med = {r: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
               for r, v in results.items() if v}
        for row, (gbps, cpu) in med.items():
            per_cpu = "%.2f" % (gbps / cpu) if cpu else "-"
            ratio = "%.2fx" % (gbps / med["haproxy"][0]) if "haproxy" in med else "-"
            print("%-9s %10.2f %11.1f%% %14s %12s" % (row, gbps, cpu * 100, per_cpu, ratio))

    # -- idle connections -------------------------------------------------
    def hold_idle(self, port, n, budget=90):
        """Opens N connections, sends one request on each and reads its
        response, then keeps them idle. Returns the sockets."""
        sel = selectors.DefaultSelector()
        req = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
        socks, pending = [], {}
        deadline = time.time() + budget
        opened = 0
        progress = time.time()
        # Stops at the deadline, or after 5 s without a new established
        # connection (a proxy at its connection limit leaves them queued).
        while (opened < n or pending) and time.time() < deadline and time.time() - progress < 5:
            while opened < n and len(pending) < 500:
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                sel.register(s, selectors.EVENT_WRITE)
                pending[s] = b""
                opened += 1
            for key, ev in sel.select(1.0):
                s = key.fileobj
                if ev & selectors.EVENT_WRITE:
                    try:
                        s.send(req)
                    except OSError:
                        sel.unregister(s)
                        pending.pop(s)
                        s.close()
                        continue
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(s)
                    pending.pop(s)
                    s.close()
                    continue
                pending[s] += data
                if b"\r\n\r\n" in pending[s] and b"hello from the origin" in pending[s]:
                    sel.unregister(s)
                    pending.pop(s)
                    socks.append(s)
                    progress = time.time()
        for s in pending:
            sel.unregister(s)
            s.close()
        return socks

    def still_open(self, socks):
        alive = 0
        for s in socks:
            try:
                alive += 1 if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) else 0
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        return alive

    def idle(self, rows):
        raise_nofile()
        n = self.args.idle_conns
        if "origin" not in self.procs:
            self.start_origin()
        print("\n%d idle keep-alive client connections (one request each, then idle 5 s)" % n)
        print("%-9s %8s %10s %12s %14s" % ("row", "held", "RSS MiB", "RSS before", "KiB/conn"))
        for row in rows:
            if row not in self.procs:
                try:
                    getattr(self, "start_" + row)()
                except Exception as e:
                    self.notes.append("idle %s: not measured: %s" % (row, str(e).splitlines()[0]))
                    continue
            pid = self.procs[row].pid
            pids = [pid] + children(pid)  # nginx: the worker does the work
            before = sum(rss_kb(p) for p in pids)
            t0 = time.time()
            socks = self.hold_idle(self.ports[row], n)
            opened_in = time.time() - t0
            time.sleep(5)
            held = self.still_open(socks)
            rss = sum(rss_kb(p) for p in pids)
            print("%-9s %8d %10.1f %10.1f MiB %14.1f   (opened in %.1f s)"
                  % (row, held, rss / 1024, before / 1024, (rss - before) / max(held, 1), opened_in))
            for s in socks:
                s.close()

    def main(self):
        only = self.args.only.split(",") if self.args.only else list(ALL_ROWS) + ["l4", "idle"]
        http = [r for r in ALL_ROWS if r in only]
        if http:
            self.print_http(self.http_rows(http))
        if "l4" in only:
            self.l4()
        if "idle" in only:
            self.idle([r for r in ("nginx", "haproxy", "sonic") if r in only or not http])
        if self.notes:
            print("\nnotes:")
            for n in self.notes:
                print("  " + n)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--only", default="")
    ap.add_argument("--idle-conns", type=int, default=10000)
    ap.add_argument("--sonic", default=os.environ.get("SONIC_BIN", os.path.join(TOP, "build", "sonic")))
    args = ap.parse_args()
    for tool in ("wrk", "nginx", "haproxy", "iperf3", "taskset"):
        if not shutil.which(tool):
            sys.exit("missing %s: run packaging/install-deps" % tool)
    b = Bench(args)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    try:
        b.main()
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()
