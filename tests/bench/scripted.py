#!/usr/bin/python3
"""Per-request JavaScript in the proxy: one origin, one worker each, wrk on
loopback.

Every scripted row applies the same rule: a request whose decoded query
matches /union\\s+select/i gets 403 without reaching the origin; any other
goes to the origin, whose response gets the header x-scripted: 1.

Rows (interleaved run by run, medians of --runs runs of --seconds each):
  nginx           nginx proxy_pass with upstream keepalive, no script
  njs             the same nginx with ngx_http_js_module: js_set for the
                  rule (`if ($blocked) { return 403; }`), js_header_filter
                  for the header
  sonic-noscript  sonic run --mode reverse --workers 1, no script
  sonic           the same with --script: a Workers module
                  (export default { async fetch(request) {...} })
  sonic-sw        the same with a service-worker script: addEventListener
                  'fetch' calling respondWith only on a match, and 'response'
                  setting the header
  ROW+legs        a sonic row in a fresh cgroup (wrk, origin and sonic in it)
                  under `sonic accel enable scope proxy`, the legs accelerated
                  as `sonic run` normally runs; skipped, with the reason,
                  when acceleration cannot be enabled (not root, no BPF)

Before the load, each row is checked with one request: ?q=1%20union%20select
must give 403 and a normal query 200 with x-scripted: 1 (unscripted rows: a
200). A row that fails its check is not measured.

CPU placement on this 2-CPU machine: the proxy owns CPU 0; wrk and the
origin share CPU 1. The proxy's CPU time comes from /proc/PID/stat; the
script's cost per request is the scripted row's CPU us/request minus its
unscripted peer's in the same run (sonic and sonic-sw against
sonic-noscript, njs against nginx), the median over the runs.

Temporary files (configs, scripts, sonic's --state-dir with its translation
cache) live under one mktemp -d directory, removed on exit with every
process, cgroup and bpffs root this script made.

  tests/bench/scripted.sh [--runs N] [--seconds S] [--connections C] [--only ROWS]
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "lib"))

import sonictest  # noqa: E402
from benchlib import (cpu_busy, enter, failed_mark, free_port, nginx_conf, origin_block,  # noqa: E402
                      proxy_block, stop_process, tree_cpu_seconds, wait_accepting, wrk)

PROXY_CPU = "0"
LOAD_CPU = "1"
NJS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"
NJS_PACKAGE = "libnginx-mod-http-js"
BASE_ROWS = ("nginx", "njs", "sonic-noscript", "sonic", "sonic-sw")
LEGS_ROWS = tuple(r + "+legs" for r in BASE_ROWS if r.startswith("sonic"))
ALL_ROWS = BASE_ROWS + LEGS_ROWS
# A scripted row's unscripted peer, for the script's cost per request.
PEER = {"njs": "nginx", "sonic": "sonic-noscript", "sonic-sw": "sonic-noscript"}
# What wrk asks for: a benign query, so the rule has something to decode.
PATH = "/?id=42&q=hello%20world"
BLOCKED_PATH = "/?q=1%20union%20select%20password%20from%20users"
SONIC_START = 60  # seconds; the first start translates the script with Babel

WORKER_MODULE = """\
export default {
  async fetch(request) {
    if (/union\\s+select/i.test(decodeURIComponent(new URL(request.url).search)))
      return new Response('blocked', {status: 403});
    const r = await fetch(request);
    const out = new Response(r.body, r);
    out.headers.set('x-scripted', '1');
    return out;
  }
}
"""

SERVICE_WORKER = """\
addEventListener('fetch', function (event) {
  if (/union\\s+select/i.test(decodeURIComponent(new URL(event.request.url).search)))
    event.respondWith(new Response('blocked', {status: 403}));
});
addEventListener('response', function (event) {
  event.response.headers.set('x-scripted', '1');
});
"""

NJS_SCRIPT = """\
function blocked(r) {
    return /union\\s+select/i.test(decodeURIComponent(r.variables.args || '')) ? '1' : '';
}
function addHeader(r) {
    r.headersOut['x-scripted'] = '1';
}
export default {blocked: blocked, addHeader: addHeader};
"""


def base_of(row):
    return row.partition("+")[0]


def variant_of(row):
    plus, suffix = row.partition("+")[1:]
    return plus + suffix


def scripted(row):
    return base_of(row) in PEER


def peer_of(row):
    return PEER[base_of(row)] + variant_of(row)


def get(port, path):
    """(status, headers lower-cased) of one GET through a fresh connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path, headers={"Host": "bench"})
        r = c.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()


class Bench:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="sonic-bench-scripted-")
        self.state = os.path.join(self.tmp, "state")
        os.makedirs(self.state)
        self.procs = {}
        self.ports = {}
        self.notes = []
        self.by_run = {}    # row -> {run: wrk result}
        self.cgroup = None  # the +legs cgroup
        self.bpffs = None   # the +legs bpffs root
        self.legs_refused = None

    # -- processes --------------------------------------------------------
    def log_tail(self, name):
        """The end of NAME's stderr, or of its error.log for nginx."""
        path = os.path.join(self.tmp, name, "error.log")
        if not os.path.exists(path):
            path = os.path.join(self.tmp, name + ".log")
        with open(path, errors="replace") as f:
            return f.read()[-1500:]

    def spawn(self, name, argv, cpu, port, timeout=10, stdout=None):
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        cgroup = self.cgroup if variant_of(name) else None
        p = subprocess.Popen(["taskset", "-c", cpu] + argv, stdout=stdout or log, stderr=log,
                             stdin=subprocess.DEVNULL, preexec_fn=lambda: enter(cgroup))
        self.procs[name] = p
        self.ports[name] = port
        try:
            wait_accepting(port, p, name, timeout)
        except RuntimeError as e:
            raise RuntimeError("%s: %s" % (e, self.log_tail(name)))

    def stop(self, name):
        stop_process(self.procs.pop(name, None))

    def cleanup(self):
        for name in list(self.procs):
            self.stop(name)
        if self.cgroup:
            sonictest.remove_cgroup(self.cgroup)
        if self.bpffs:
            sonictest.remove_bpffs_root(self.bpffs, self.args.sonic)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # -- the +legs cgroup -------------------------------------------------
    def sonic_cmd(self, *args):
        return subprocess.run([self.args.sonic, "--bpffs", self.bpffs, "-q"] + list(args),
                              capture_output=True, text=True, timeout=120)

    def start_legs(self):
        """A fresh cgroup under `sonic accel enable scope proxy` in its own
        bpffs root (the host's sonic, if any, is untouched). When enable
        refuses, the accel family is loaded explicitly and enable tried once
        more; a second refusal is returned as the reason the +legs rows are
        skipped."""
        if os.geteuid() != 0:
            return "needs root (cgroup + BPF)"
        self.bpffs = "/sys/fs/bpf/" + sonictest.unique("sonic-bench-scripted")
        self.cgroup = sonictest.make_cgroup("sonic-bench-scripted")
        enable = ("accel", "enable", "cgroup", self.cgroup, "scope", "proxy")
        r = self.sonic_cmd(*enable)
        if r.returncode != 0:
            load = self.sonic_cmd("prog", "load", "accel")
            r = self.sonic_cmd(*enable) if load.returncode == 0 else load
        if r.returncode != 0:
            return "sonic accel enable failed: " + " | ".join((r.stderr or r.stdout).strip().splitlines()[-2:])
        return None

    def accel_stats(self):
        r = subprocess.run([self.args.sonic, "--bpffs", self.bpffs, "-j", "stats", "accel"],
                           capture_output=True, text=True)
        return json.loads(r.stdout).get("accel", {}) if r.returncode == 0 else {}

    # -- servers ----------------------------------------------------------
    def nginx(self, name, block, port, cpu, main=()):
        conf = nginx_conf(os.path.join(self.tmp, name), block, main)
        self.spawn(name, ["nginx", "-c", conf, "-e", os.path.join(self.tmp, name, "error.log")], cpu, port)

    def start_origin(self, variant):
        port = free_port()
        self.nginx("origin" + variant, origin_block(port, os.path.join(self.tmp, "www")), port, LOAD_CPU)

    def start_nginx(self, variant):
        port = free_port()
        self.nginx("nginx" + variant, proxy_block(port, self.ports["origin" + variant]), port, PROXY_CPU)

    def start_njs(self, variant):
        if not os.path.exists(NJS_MODULE):
            raise RuntimeError("%s missing: install %s (packaging/install-deps)" % (NJS_MODULE, NJS_PACKAGE))
        js, port = self.write("rule.njs.js", NJS_SCRIPT), free_port()
        block = textwrap.dedent("""\
            js_import main from {js};
            js_set $blocked main.blocked;
            upstream origin {{ server 127.0.0.1:{o}; keepalive 64; }}
            server {{
                listen 127.0.0.1:{p};
                location / {{
                    if ($blocked) {{ return 403; }}
                    js_header_filter main.addHeader;
                    proxy_pass http://origin;
                    proxy_http_version 1.1;
                    proxy_set_header Connection "";
                }}
            }}
            """).format(js=js, o=self.ports["origin" + variant], p=port)
        self.nginx("njs" + variant, block, port, PROXY_CPU, main=["load_module %s;" % NJS_MODULE])

    def start_sonic(self, row):
        base, variant = base_of(row), variant_of(row)
        script = {"sonic": ("worker.js", WORKER_MODULE), "sonic-sw": ("sw.js", SERVICE_WORKER)}.get(base)
        port = free_port()
        argv = [self.args.sonic, "--state-dir", self.state] + (["--bpffs", self.bpffs] if variant else []) + [
            "run", "--mode", "reverse", "--listen", "127.0.0.1:%d" % port,
            "--upstream", "127.0.0.1:%d" % self.ports["origin" + variant], "--workers", "1"]
        if script:
            argv += ["--script", self.write(*script)]
        # The access log goes to /dev/null (nginx logs nothing here either).
        self.spawn(row, argv, PROXY_CPU, port, timeout=SONIC_START, stdout=subprocess.DEVNULL)

    def start(self, row):
        variant = variant_of(row)
        if "origin" + variant not in self.procs:
            self.start_origin(variant)
        if base_of(row).startswith("sonic"):
            self.start_sonic(row)
        else:
            getattr(self, "start_" + base_of(row))(variant)

    def precheck(self, row):
        """None when ROW applies the rule (or, unscripted, proxies), else why not."""
        port = self.ports[row]
        status, headers = get(port, PATH)
        if status != 200:
            return "a normal request got %d, not 200" % status
        if not scripted(row):
            return None
        if headers.get("x-scripted") != "1":
            return "a normal request's response lacks x-scripted: 1 (%r)" % headers.get("x-scripted")
        status, _ = get(port, BLOCKED_PATH)
        if status != 403:
            return "?q=1%%20union%%20select got %d, not 403" % status
        return None

    def start_rows(self, rows):
        started = []
        for row in rows:
            if variant_of(row) and self.legs_refused is None and self.cgroup is None:
                self.legs_refused = self.start_legs() or ""
            if variant_of(row) and self.legs_refused:
                self.notes.append("%s: skipped: %s" % (row, self.legs_refused))
                continue
            try:
                self.start(row)
                why = self.precheck(row)
            except Exception as e:  # a row that cannot start is reported, not fatal
                why = "did not start: " + " | ".join(str(e).strip().splitlines()[-3:])
            if why:
                self.notes.append("%s: not measured: %s" % (row, why))
                self.stop(row)
                continue
            started.append(row)
        return started

    # -- wrk --------------------------------------------------------------
    def wrk(self, row):
        """A benchlib.Wrk with the proxy's CPU us per request (us_per_req)
        and CPU 1's busy share (load_share)."""
        pid = self.procs[row].pid
        cpu0, busy0 = tree_cpu_seconds(pid), cpu_busy()
        cgroup = self.cgroup if variant_of(row) else None
        r = wrk("http://127.0.0.1:%d%s" % (self.ports[row], PATH), self.args.connections, self.args.seconds,
                LOAD_CPU, preexec_fn=lambda: enter(cgroup))
        busy1 = cpu_busy()
        r.us_per_req = (tree_cpu_seconds(pid) - cpu0) * 1e6 / r.requests if r.requests else 0.0
        load = busy1[LOAD_CPU][0] - busy0[LOAD_CPU][0]
        r.load_share = load / max(1, busy1[LOAD_CPU][1] - busy0[LOAD_CPU][1])
        return r

    def measure(self, rows):
        results = {r: [] for r in rows}
        for run in range(self.args.runs):
            for row in rows:
                if self.procs[row].poll() is not None:
                    self.notes.append("%s: exited during run %d: %s" % (row, run + 1, self.log_tail(row)[-300:]))
                    continue
                res = self.wrk(row)
                if res.failed:
                    self.notes.append("%s run %d: %s" % (row, run + 1, res.problems()))
                results[row].append(res)
                self.by_run.setdefault(row, {})[run] = res
                print("  run %d %-20s %9.0f rps  p50 %6.2f ms  p99 %6.2f ms  %5.1f us/req  CPU1 %3.0f%%  %s"
                      % (run + 1, row, res.rps, res.p50, res.p99, res.us_per_req, res.load_share * 100,
                         res.problems()), file=sys.stderr)
        return results

    # -- report -----------------------------------------------------------
    def paired(self, row, ref, value):
        """Median over the runs of VALUE(ROW's result, REF's result of the
        same run): rows measured seconds apart share the machine's slow
        phases, which values taken minutes apart do not cancel."""
        a, b = self.by_run.get(row, {}), self.by_run.get(ref, {})
        vals = [value(a[r], b[r]) for r in a if r in b]
        vals = [v for v in vals if v is not None]
        return statistics.median(vals) if vals else None

    def ratio(self, row, ref, attr):
        return self.paired(row, ref, lambda x, y: getattr(x, attr) / getattr(y, attr) if getattr(y, attr) else None)

    def script_us(self, row):
        if not scripted(row):
            return None
        return self.paired(row, peer_of(row), lambda x, y: x.us_per_req - y.us_per_req)

    def report(self, results):
        med = {r: tuple(statistics.median(getattr(x, i) for x in v)
                        for i in ("rps", "p50", "p99", "us_per_req", "load_share"))
               for r, v in results.items() if v}
        fmt = lambda x, f="%.2fx": f % x if x is not None else "-"  # noqa: E731
        print("\nPer-request script through one worker, wrk -t1 -c%d %s, %d x %d s, medians"
              % (self.args.connections, PATH, self.args.runs, self.args.seconds))
        print("Rule: 403 for /union\\s+select/i in the decoded query, else the origin's response + x-scripted: 1.")
        print("CPU 0: the proxy; CPU 1: wrk + origin. Ratios and script us/req are paired run by run (each row")
        print("against its reference in the same run), then the median. script us/req: the row's CPU us/req")
        print("minus its unscripted peer's (sonic, sonic-sw: sonic-noscript of the same variant; njs: nginx).")
        print("+legs rows: wrk, origin and sonic in a cgroup under `sonic accel enable scope proxy`.")
        print("A row whose wrk runs saw any non-2xx response or socket error is FAILED.")
        print("%-20s %9s %8s %8s %8s %9s %9s %10s %11s %6s  %s"
              % ("row", "rps", "p50 ms", "p99 ms", "vs njs", "vs nginx", "p99/njs", "CPU us/req", "script us/req",
                 "CPU 1", "errors"))
        for row in ALL_ROWS:
            if row not in med:
                continue
            rps, p50, p99, us, load = med[row]
            print("%-20s %9.0f %8.2f %8.2f %8s %9s %9s %10.1f %13s %5.0f%%  %s"
                  % (row, rps, p50, p99, fmt(self.ratio(row, "njs", "rps")), fmt(self.ratio(row, "nginx", "rps")),
                     fmt(self.ratio(row, "njs", "p99")), us, fmt(self.script_us(row), "%.1f"), load * 100,
                     failed_mark(results[row]) or "0"))
        for row in ("sonic", "sonic-sw", "sonic+legs", "sonic-sw+legs"):
            if row in med:
                print("%s: %s njs (target >= 1.2x), %s plain nginx (target >= 1.0x), rps paired by run"
                      % (row, fmt(self.ratio(row, "njs", "rps")), fmt(self.ratio(row, "nginx", "rps"))))
        if self.cgroup and not self.legs_refused:
            st = self.accel_stats()
            print("accel counters over the +legs rows: inserted %s, skipped_not_proxy %s, redirects %s, misses %s, "
                  "overflows %s" % (st.get("inserted"), st.get("skipped_not_proxy"), st.get("redirects"),
                                    st.get("misses"), st.get("overflows")))

    def main(self):
        rows = [r for r in ALL_ROWS if not self.args.only or r in self.args.only.split(",")]
        started = self.start_rows(rows)
        if started:
            results = self.measure(started)
            self.report(results)
            for row in started:
                if failed_mark(results[row]):
                    self.notes.append("%s: its log ends: %s" % (row, " | ".join(self.log_tail(row).splitlines()[-3:])))
        if self.notes:
            print("\nnotes:")
            for n in self.notes:
                print("  " + n)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--only", default="", help="comma-separated rows: " + ",".join(ALL_ROWS))
    ap.add_argument("--sonic", default=os.environ.get("SONIC_BIN", os.path.join(TOP, "build", "sonic")))
    args = ap.parse_args()
    for tool in ("wrk", "nginx", "taskset"):
        if not shutil.which(tool):
            sys.exit("missing %s: run packaging/install-deps" % tool)
    if not os.access(args.sonic, os.X_OK):
        sys.exit("no sonic binary at %s (build it, or pass --sonic)" % args.sonic)
    unknown = set(filter(None, args.only.split(","))) - set(ALL_ROWS)
    if unknown:
        sys.exit("unknown rows: %s (rows: %s)" % (",".join(sorted(unknown)), ",".join(ALL_ROWS)))
    b = Bench(args)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    try:
        b.main()
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()
