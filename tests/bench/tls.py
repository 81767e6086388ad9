#!/usr/bin/python3
"""TLS termination benchmark: sonic intercepting (reverse listener with
tls = "intercept", leaves minted by its CA), nginx terminating with a static
certificate of the same key type (ECDSA P-256) and mitmproxy in reverse
mode, each one worker in front of the same plain nginx origin.

Rows (interleaved run by run, medians of --runs runs of --seconds each):
  keep-alive   wrk -t1 -c50 over HTTPS, connections kept
  resumed      openssl s_time -reuse: a new connection per request, the
               session resumed (tickets)
  full         openssl s_time -new: a new connection and a full handshake
               per request

CPU placement on this 2-CPU machine: the server measured owns CPU 0; the
client and the origin share CPU 1. CPU us/req is the server's own CPU time
(all its threads and processes) over the requests it served.
s_time is one single-threaded client: in the per-connection rows it may be
the bottleneck, which the CPU us/req column shows (the server's cost per
connection stays meaningful when its rps is the client's).

  tests/bench/tls.sh [--runs N] [--seconds S] [--only sonic,nginx,mitmproxy]
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import benchlib  # noqa: E402

SONIC = os.environ.get("SONIC_BIN", os.path.join(TOP, "build", "sonic"))
ROWS = ("sonic", "nginx", "mitmproxy")
KINDS = ("keep-alive", "resumed", "full")


def sh(*argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True)


def tree_cpu(pid):
    """CPU seconds of PID and every descendant."""
    total = benchlib.cpu_seconds(pid)
    for c in benchlib.children(pid):
        total += tree_cpu(c)
    return total


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="sonic-bench-tls-")
        self.procs = []
        self.ports = {}

    def spawn(self, argv, what, port, cpu):
        p = subprocess.Popen(["taskset", "-c", cpu] + argv, stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(self.tmp, what + ".stderr"), "wb"))
        self.procs.append(p)
        benchlib.wait_accepting(port, p, what, timeout=30)
        return p

    def start(self):
        d = self.tmp
        # The origin, plain HTTP, on the client's CPU.
        origin = benchlib.free_port()
        conf = benchlib.nginx_conf(os.path.join(d, "origin"), benchlib.origin_block(origin, os.path.join(d, "www")))
        self.spawn(["nginx", "-c", conf], "origin", origin, "1")
        self.servers = {}
        if "nginx" in self.args.only:
            key, crt = os.path.join(d, "static.key"), os.path.join(d, "static.pem")
            sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
               "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=bench.test",
               "-addext", "subjectAltName=DNS:bench.test,IP:127.0.0.1")
            port = benchlib.free_port()
            block = textwrap.dedent("""\
                upstream origin {{ server 127.0.0.1:{o}; keepalive 64; }}
                server {{
                    listen 127.0.0.1:{p} ssl;
                    ssl_certificate {c};
                    ssl_certificate_key {k};
                    ssl_protocols TLSv1.2 TLSv1.3;
                    ssl_session_cache shared:SSL:10m;
                    ssl_session_tickets on;
                    location / {{
                        proxy_pass http://origin;
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                    }}
                }}
                """).format(o=origin, p=port, c=crt, k=key)
            conf = benchlib.nginx_conf(os.path.join(d, "nginx"), block)
            self.servers["nginx"] = (self.spawn(["nginx", "-c", conf], "nginx", port, "0"), port)
        if "sonic" in self.args.only:
            state = os.path.join(d, "state")
            sh(SONIC, "--state-dir", state, "ca", "init")
            port = benchlib.free_port()
            conf = os.path.join(d, "sonic.toml")
            with open(conf, "w") as f:
                f.write(textwrap.dedent("""\
                    workers = 1
                    [[listener]]
                    address = "127.0.0.1:{p}"
                    mode = "reverse"
                    tls = "intercept"
                    [[upstream]]
                    name = "origin"
                    servers = ["127.0.0.1:{o}"]
                    [[route]]
                    upstream = "origin"
                    """).format(p=port, o=origin))
            self.servers["sonic"] = (self.spawn([SONIC, "-q", "--state-dir", state, "run", "--config", conf],
                                                "sonic", port, "0"), port)
        if "mitmproxy" in self.args.only:
            port = benchlib.free_port()
            argv = ["mitmdump", "-q", "--mode", "reverse:http://127.0.0.1:%d" % origin, "--listen-host",
                    "127.0.0.1", "-p", str(port), "--set", "confdir=" + os.path.join(d, "mitm")]
            self.servers["mitmproxy"] = (self.spawn(argv, "mitmproxy", port, "0"), port)
        # One request each: the leaf is minted (sonic, mitmproxy) before any run.
        for name, (_, port) in self.servers.items():
            sh("curl", "-skf", "-o", "/dev/null", "https://127.0.0.1:%d/" % port)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def measure(self, row, kind):
        """(requests per second, server CPU us per request, failure text)."""
        proc, port = self.servers[row]
        secs = self.args.seconds
        before = tree_cpu(proc.pid)
        if kind == "keep-alive":
            w = benchlib.wrk("https://127.0.0.1:%d/" % port, 50, secs, cpu="1")
            requests, rps, problem = w.requests, w.rps, w.problems()
        else:
            flag = "-reuse" if kind == "resumed" else "-new"
            r = subprocess.run(["taskset", "-c", "1", "openssl", "s_time", "-connect", "127.0.0.1:%d" % port,
                                "-www", "/", flag, "-time", str(secs)], capture_output=True, text=True,
                               timeout=secs + 60)
            m = re.search(r"(\d+) connections in (\d+) real seconds", r.stdout)
            if not m:
                return 0.0, 0.0, "s_time failed: " + (r.stdout + r.stderr)[-300:]
            requests = int(m.group(1))
            rps = requests / max(1, int(m.group(2)))
            problem = ""
            # s_time marks each reused connection "r", each new one "*".
            reused = "".join(re.findall(r"^[r*]+$", r.stdout, re.M)).count("r")
            if kind == "resumed" and reused < requests * 0.9:
                problem = "FAILED: resumed %d of %d" % (reused, requests)
        cpu = tree_cpu(proc.pid) - before
        return rps, (cpu * 1e6 / requests if requests else 0.0), problem


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--only", default=",".join(ROWS))
    args = ap.parse_args()
    args.only = [r for r in args.only.split(",") if r]
    for tool in ("nginx", "wrk", "openssl", "curl", "taskset") + (("mitmdump",) if "mitmproxy" in args.only else ()):
        if not shutil.which(tool):
            sys.exit("tls.sh: %s is missing: run packaging/install-deps" % tool)
    benchlib.raise_nofile()
    b = Bench(args)
    results = {(r, k): [] for r in args.only for k in KINDS}
    problems = {}
    try:
        b.start()
        for run in range(args.runs):
            for kind in KINDS:
                for row in args.only:
                    rps, us, problem = b.measure(row, kind)
                    results[(row, kind)].append((rps, us))
                    if problem:
                        problems[(row, kind)] = problem
                    print("run %d %-10s %-9s %9.0f rps %8.1f us/req %s" % (run + 1, kind, row, rps, us, problem),
                          file=sys.stderr, flush=True)
    finally:
        b.stop()
    med = {key: (statistics.median(v[0] for v in vals), statistics.median(v[1] for v in vals))
           for key, vals in results.items() if vals}
    print("| kind | server | rps (median of %d x %ds) | CPU us/req | vs nginx | vs mitmproxy | |" % (args.runs, args.seconds))
    print("|---|---|---:|---:|---:|---:|---|")
    for kind in KINDS:
        for row in args.only:
            rps, us = med[(row, kind)]
            vs = lambda other: ("%.2fx" % (rps / med[(other, kind)][0])  # noqa: E731
                                if (other, kind) in med and med[(other, kind)][0] else "-")
            print("| %s | %s | %.0f | %.1f | %s | %s | %s |" % (kind, row, rps, us, vs("nginx"), vs("mitmproxy"),
                                                                problems.get((row, kind), "")))


if __name__ == "__main__":
    main()
