"""What the HTTP benchmarks share: processes on free loopback ports, CPU
accounting from /proc, nginx configurations, and wrk runs read into one
result that counts what went wrong.

A row whose load saw any non-2xx/3xx response or socket error is FAILED in
every table: its numbers measure something other than the service.
"""
import os
import re
import resource
import subprocess
import sys
import textwrap

# The test tier's helpers (tests/lib), which the benches share.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import proxyrun  # noqa: E402
from proxyrun import free_port  # noqa: E402,F401  (the benches import it from here)
from sonictest import end_process  # noqa: E402


def wait_accepting(port, proc, what, timeout=10):
    """Waits until 127.0.0.1:PORT accepts; fails early when PROC exits."""
    proxyrun.wait_accepting(port, proc, timeout, what)


# As high as this process may go (a container may forbid raising the hard limit).
NOFILE = min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1])


def raise_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def stop_process(p, grace=5):
    """Ends P (None: nothing) if it still runs: SIGTERM, GRACE seconds,
    then SIGKILL."""
    if p:
        end_process(p, grace=grace)


def enter(cgroup):
    """preexec_fn: raise the FD limit, and join CGROUP when given."""
    raise_nofile()
    if cgroup:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))


def cpu_seconds(pid):
    """utime + stime of PID, all threads, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_busy():
    """Per-CPU (busy, total) jiffies from /proc/stat, keyed by CPU number."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                idle = v[3] + v[4]  # idle + iowait
                out[m.group(1)] = (sum(v[:8]) - idle, sum(v[:8]))
    return out


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def tree_cpu_seconds(pid):
    """cpu_seconds of PID and its direct children (nginx's workers)."""
    return cpu_seconds(pid) + sum(cpu_seconds(c) for c in children(pid))


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]


class Wrk:
    """One wrk --latency run, read from its output."""

    def __init__(self, out):
        self.out = out
        self.rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        self.p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
        self.p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
        self.requests = int(re.search(r"(\d+) requests in", out).group(1))
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        self.non2xx = int(m.group(1)) if m else 0
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        self.socket_errors = sum(int(x) for x in m.groups()) if m else 0
        self.socket_detail = m.group(0) if m else ""

    @property
    def failed(self):
        return self.non2xx > 0 or self.socket_errors > 0

    def problems(self):
        """What went wrong, in words ("" when nothing did)."""
        parts = []
        if self.non2xx:
            parts.append("%d non-2xx" % self.non2xx)
        if self.socket_errors:
            parts.append(self.socket_detail.lower())
        return ", ".join(parts)


def wrk(url, connections, seconds, cpu=None, preexec_fn=None):
    argv = (["taskset", "-c", cpu] if cpu is not None else []) + [
        "wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds, "--latency", url]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, preexec_fn=preexec_fn)
    if r.returncode != 0 or "Requests/sec" not in r.stdout:
        raise RuntimeError("wrk failed: %s %s" % (r.stdout[-500:], r.stderr[-500:]))
    return Wrk(r.stdout)


def failed_mark(runs):
    """The table cell for a row's runs: "" or "FAILED: ..." with the sums."""
    non2xx = sum(r.non2xx for r in runs)
    errors = sum(r.socket_errors for r in runs)
    if not non2xx and not errors:
        return ""
    return "FAILED: %d non-2xx, %d socket errors" % (non2xx, errors)


def nginx_conf(directory, server_block, main=()):
    """An nginx.conf in DIRECTORY (made) with one worker, no access log and
    keep-alive that outlasts any run, and SERVER_BLOCK in its http block;
    MAIN: more directives for the main context (load_module)."""
    return proxyrun.nginx_conf(directory, server_block, connections=30000,
                               main=["worker_rlimit_nofile %d;" % NOFILE] + list(main),
                               http=["keepalive_requests 1000000;", "keepalive_timeout 300s;"])


def origin_block(port, www):
    """nginx serving WWW (a small index.html is written) on PORT."""
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("hello from the origin\n")
    return "server {{ listen 127.0.0.1:{p}; root {w}; location / {{ }} }}\n".format(p=port, w=www)


def proxy_block(port, origin_port):
    """nginx proxy_pass to 127.0.0.1:ORIGIN_PORT with upstream keep-alive."""
    return textwrap.dedent("""\
        upstream origin {{ server 127.0.0.1:{o}; keepalive 64; }}
        server {{
            listen 127.0.0.1:{p};
            location / {{
                proxy_pass http://origin;
                proxy_http_version 1.1;
                proxy_set_header Connection "";
            }}
        }}
        """).format(o=origin_port, p=port)


def established_to(port):
    """TCP connections established to 127.0.0.1:PORT (or any address) now."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        n += 1
        except OSError:
            pass
    return n
