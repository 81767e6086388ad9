"""End-to-end tests: `sonic run` between real clients (curl, wrk, socat,
python sockets) and a real origin (tests/lib/origin.py, or nginx), all on
loopback ports picked free at run time.

Every sonic a test starts is stopped on teardown, and teardown checks that
it was still running (no crash) and that SIGTERM made it exit 0.
"""
import os
import shutil
import socket
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import origin as origin_mod  # noqa: E402
import proxyrun  # noqa: E402
import sonictest  # noqa: E402

TOOLS = ["curl", "wrk", "socat", "nginx"]


def pytest_configure(config):
    if not os.access(sonictest.SONIC, os.X_OK):
        raise pytest.UsageError("sonic binary not found at %s (set SONIC_BIN)" % sonictest.SONIC)
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        raise pytest.UsageError("missing %s: run packaging/install-deps" % ", ".join(missing))


@pytest.fixture
def origin():
    o = origin_mod.Origin().start()
    yield o
    o.stop()


@pytest.fixture
def origin_factory():
    made = []

    def make():
        o = origin_mod.Origin().start()
        made.append(o)
        return o
    yield make
    for o in made:
        o.stop()


class Runner:
    """Starts sonic runs for one test and stops them all afterwards."""

    def __init__(self, workdir):
        self.workdir = str(workdir)
        self.proxies = []

    def start(self, args, listen_port, wait_ports=(), timeout=10.0, global_args=(), wrapper=()):
        p = proxyrun.Proxy(args, listen_port, self.workdir, wait_ports, global_args=global_args, wrapper=wrapper)
        self.proxies.append(p)
        return p.start(timeout)

    def reverse(self, upstream, workers=1, extra=(), global_args=()):
        port = proxyrun.free_port()
        return self.start(["--mode", "reverse", "--listen", "127.0.0.1:%d" % port,
                           "--upstream", upstream, "--workers", workers] + list(extra), port,
                          global_args=global_args)

    def forward(self, workers=1, global_args=()):
        port = proxyrun.free_port()
        return self.start(["--mode", "forward", "--listen", "127.0.0.1:%d" % port,
                           "--workers", workers], port, global_args=global_args)

    def config(self, cfg, global_args=(), wrapper=()):
        """Runs sonic on a Config (see configs.py); GLOBAL_ARGS go before `run`;
        WRAPPER runs it (["prlimit", "--nofile=256"])."""
        path = cfg.write(self.workdir)
        return self.start(["--config", path], cfg.listen_port, cfg.wait_ports(), global_args=global_args,
                          wrapper=wrapper)

    def stop_all(self):
        problems = []
        for p in self.proxies:
            if p.proc is None:
                continue
            if p.proc.poll() is not None and not p.expected_exit:
                problems.append("%r died during the test with %d; stderr: %s"
                                % (p, p.proc.returncode, p.stderr()[-2000:]))
                continue
            if p.expected_exit:
                p.stop()
                continue
            code = p.stop()
            if code != 0:
                problems.append("%r exited %d on SIGTERM; stderr: %s" % (p, code, p.stderr()[-2000:]))
        return problems


@pytest.fixture
def sonic_run(tmp_path):
    r = Runner(tmp_path)
    yield r
    problems = r.stop_all()
    assert not problems, "\n".join(problems)


@pytest.fixture
def reverse(sonic_run, origin):
    """sonic in reverse mode in front of the test origin."""
    return sonic_run.reverse(origin.address)


def connect(port, timeout=10.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


@pytest.fixture
def sockets():
    """A list for the client sockets a test opens: each is closed on
    teardown, also when the test failed holding hundreds of them."""
    held = []
    yield held
    for s in held:
        try:
            s.close()
        except OSError:
            pass


@pytest.fixture
def echo_target():
    """A socat echo server (one cat per connection) on a free port."""
    import subprocess
    port = proxyrun.free_port()
    p = subprocess.Popen(["socat", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork" % port, "EXEC:cat"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proxyrun.wait_accepting(port, p, 10, "socat")
    yield port
    p.kill()
    p.wait(5)
