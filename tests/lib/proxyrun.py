"""Running `sonic run` (and nginx as an origin) for end-to-end tests.

A Proxy starts sonic on free loopback ports, waits until its listener
accepts, keeps its stdout and stderr in files, and is always killed on
stop(), also when the test failed.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import textwrap
import time

import sonictest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_accepting(port, proc=None, timeout=10.0, what="listener", host="127.0.0.1"):
    """Waits until HOST:PORT accepts a connection; fails early when PROC
    exits first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited with %d before accepting on %d" % (what, proc.returncode, port))
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s not accepting on %s port %d after %.0fs" % (what, host, port, timeout))


def toml_string(s):
    return json.dumps(s)


class Proxy:
    """One `sonic run`. ARGS are the arguments after `run`, GLOBAL_ARGS those
    before it (--bpffs DIR); the caller puts the listen port in ARGS
    (listen_port) so we know what to wait on."""

    def __init__(self, args, listen_port, workdir, wait_ports=(), env=None, global_args=(), wrapper=()):
        self.args = [str(a) for a in args]
        self.wrapper = [str(a) for a in wrapper]  # a command that execs sonic (prlimit), same pid
        self.global_args = [str(a) for a in global_args]
        self.port = listen_port
        self.wait_ports = list(wait_ports)
        self.workdir = workdir
        # Two runs may share a port (reuse_port): each keeps its own files.
        stem = "sonic-%d" % listen_port
        n = 1
        while os.path.exists(os.path.join(workdir, stem + ".stderr")):
            n += 1
            stem = "sonic-%d.%d" % (listen_port, n)
        self.out_path = os.path.join(workdir, stem + ".stdout")
        self.err_path = os.path.join(workdir, stem + ".stderr")
        self.env = env
        self.proc = None
        self.expected_exit = False

    def start(self, timeout=10.0):
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(self.wrapper + [sonictest.SONIC] + self.global_args + ["run"] + self.args,
                                     stdout=self.out,
                                     stderr=self.err, stdin=subprocess.DEVNULL, env=self.env)
        try:
            for port in [self.port] + self.wait_ports:
                wait_accepting(port, self.proc, timeout, "sonic run")
        except RuntimeError as e:
            self.expected_exit = True  # the test fails here, not again on teardown
            self.stop()
            raise RuntimeError("%s\nstderr: %s\nstdout: %s" % (e, self.stderr(), self.stdout()[-2000:]))
        return self

    def stop(self, grace=15.0):
        """SIGTERM, then SIGKILL after GRACE seconds (longer than sonic's
        default drain, 10 s). Returns the exit code."""
        if self.proc is None:
            return None
        code = sonictest.end_process(self.proc, grace=grace)
        self.out.close()
        self.err.close()
        return code

    def signal(self, sig):
        self.proc.send_signal(sig)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stdout(self):
        with open(self.out_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr(self):
        with open(self.err_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def rss_kb(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS for %d" % self.pid)

    def fds(self):
        return sorted(os.listdir("/proc/%d/fd" % self.pid), key=int)

    def threads(self):
        return len(os.listdir("/proc/%d/task" % self.pid))

    def __repr__(self):
        return "Proxy(pid=%s, args=%r)" % (self.proc.pid if self.proc else None, self.args)


# A sample line of Prometheus' text format: NAME[{LABELS}] VALUE [TIMESTAMP].
PROM_LINE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eEinfNa]+( [0-9]+)?$')


def metrics(admin_port, timeout=10):
    """sonic's /metrics, scraped from the admin listener on ADMIN_PORT: each
    series as written (NAME or NAME{LABELS}) to its value. Fails on a status
    other than 200 and on a line that is not Prometheus text."""
    conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=timeout)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        status, body = response.status, response.read()
    finally:
        conn.close()
    assert status == 200, "/metrics answered %d" % status
    values = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        assert PROM_LINE.match(line), "not Prometheus text: %r" % line
        if "}" in line:
            cut = line.index("}") + 1
            series, value = line[:cut], line[cut:].split()[0]
        else:
            series, value = line.split()[:2]
        values[series] = float(value)
    return values


def sum_by(values, name, label):
    """NAME's series in VALUES (from metrics()) summed by the value of their
    LABEL: {label value: sum}."""
    sums = {}
    pattern = re.compile(r'%s="([^"]*)"' % re.escape(label))
    for series, value in values.items():
        if not series.startswith(name + "{"):
            continue
        m = pattern.search(series)
        if m:
            sums[m.group(1)] = sums.get(m.group(1), 0) + value
    return sums


def sample(values, name, **labels):
    """The value of the first series of NAME in VALUES (from metrics()) that
    carries LABELS, or None."""
    for series, value in values.items():
        if series != name and not series.startswith(name + "{"):
            continue
        if all('%s="%s"' % (k, v) in series for k, v in labels.items()):
            return value
    return None


def json_lines(text):
    """The JSON objects among TEXT's lines (an access log on stdout may
    share it with other output)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def nginx_conf(dir, server_block, connections=4096, main=(), http=()):
    """DIR/nginx.conf (DIR made): one worker in the foreground, no access
    log, its files in DIR, SERVER_BLOCK in the http block; MAIN and HTTP are
    more directives for those contexts. Returns its path."""
    os.makedirs(dir, exist_ok=True)
    lines = ["daemon off;", "worker_processes 1;", "pid %s/nginx.pid;" % dir, "error_log %s/error.log;" % dir]
    if os.geteuid() == 0:
        lines.append("user root root;")
    lines += list(main)
    lines += ["events { worker_connections %d; }" % connections, "http {", "    access_log off;"]
    lines += ["    %s_temp_path %s;" % (kind, dir) for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]
    lines += ["    " + d for d in http]
    path = os.path.join(dir, "nginx.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + textwrap.indent(textwrap.dedent(server_block), "    ") + "}\n")
    return path


def start_nginx(dir, port, server_block, prefix=()):
    """nginx (nginx_conf()) with SERVER_BLOCK, its `listen` on PORT, as its
    only server; run through PREFIX (e.g. nsenter), where it is not waited
    for. Returns the process; stop_nginx() ends it."""
    conf = nginx_conf(dir, server_block, http=["keepalive_requests 100000;"])
    proc = subprocess.Popen(list(prefix) + ["nginx", "-c", conf, "-e", os.path.join(dir, "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if not prefix:
        wait_accepting(port, proc, 10, "nginx")
    return proc


def stop_nginx(proc):
    """Ends nginx gracefully (SIGQUIT), killed after 5 s."""
    sonictest.end_process(proc, signal.SIGQUIT)


class Nginx:
    """nginx with a temporary config as an origin: one worker, a static
    response at /, and /big (N MiB file) on a free port."""

    def __init__(self, workdir, big_mib=0):
        self.dir = tempfile.mkdtemp(prefix="nginx-", dir=workdir)
        self.port = free_port()
        root = os.path.join(self.dir, "www")
        os.mkdir(root)
        with open(os.path.join(root, "index.html"), "w") as f:
            f.write("hello from nginx\n")
        if big_mib:
            with open(os.path.join(root, "big"), "wb") as f:
                f.write(os.urandom(1 << 20) * big_mib)
        self.proc = start_nginx(self.dir, self.port, """\
            server {
                listen 127.0.0.1:%d;
                root %s;
                location / { }
            }
            """ % (self.port, root))

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        stop_nginx(self.proc)
