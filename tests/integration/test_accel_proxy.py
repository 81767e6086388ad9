"""sonic accel enable scope proxy: only the legs of a running `sonic run` are
accelerated (client to proxy, proxy to upstream), not the other local
connections of the same cgroup (root). Real processes in a real cgroup: the
test origin, sonic run, and curl as the client."""
import hashlib
import os
import signal
import subprocess

import pytest

import sonictest

HERE = os.path.dirname(os.path.abspath(__file__))
ORIGIN = os.path.join(HERE, "..", "lib", "origin.py")

import proxyrun  # noqa: E402  (tests/lib is on sys.path through conftest)
import sonicconf  # noqa: E402
from sonictest import delta, wait_for  # noqa: E402
from origin import pattern  # noqa: E402

# Every test here needs accel; where it cannot load, each skips with the reason.
pytestmark = pytest.mark.usefixtures("accel_family")


class Running:
    """Processes started inside the cgroup, stopped (and waited for) at the end."""

    def __init__(self, cgroup):
        self.cgroup = cgroup
        self.procs = []

    def spawn(self, argv, **kw):
        p = sonictest.spawn([str(a) for a in argv], self.cgroup, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def origin(self):
        p = self.spawn([sonictest.PYTHON, ORIGIN, "--port", "0"], stdout=subprocess.PIPE, text=True)
        return int(p.stdout.readline())

    def sonic(self, bpffs, *args, port, host="127.0.0.1"):
        p = self.spawn([sonictest.SONIC, "--bpffs", bpffs, "run", *args], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        proxyrun.wait_accepting(port, p, 10.0, "sonic run", host)
        return p

    def curl(self, *args):
        p = self.spawn(["curl", "-sS", "--max-time", "20", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        return out

    def stop(self):
        for p in reversed(self.procs):
            sonictest.end_process(p, grace=10)


@pytest.fixture
def running(cgroup):
    r = Running(cgroup)
    yield r
    r.stop()


# (listen address, address the client connects to, what status shows)
LISTENERS = {
    "ipv4": ("127.0.0.1", "127.0.0.1", "127.0.0.1"),
    "wildcard": ("0.0.0.0", "127.0.0.1", "*"),
    "ipv6": ("[::1]", "[::1]", "[::1]"),
}


@pytest.mark.parametrize("listener", sorted(LISTENERS))
def test_only_the_proxy_legs_are_accelerated(sonic, cgroup, running, listener):
    listen, connect, shown = LISTENERS[listener]
    enabled = sonic.ok("accel", "enable", "cgroup", cgroup, "scope", "proxy")
    assert enabled["scope"] == "proxy"
    status = sonic.ok("accel", "status")
    assert [c["scope"] for c in status["cgroups"]] == ["proxy"]
    assert status["proxy_listeners"] == []

    origin = running.origin()
    port = proxyrun.free_port()
    proxy = running.sonic(sonic.bpffs, "--mode", "reverse", "--listen", "%s:%d" % (listen, port),
                          "--upstream", "127.0.0.1:%d" % origin, "--workers", "1", port=port,
                          host="::1" if listener == "ipv6" else "127.0.0.1")
    listeners = sonic.ok("accel", "status")["proxy_listeners"]
    assert listeners == [{"address": "%s:%d" % (shown, port), "netns": listeners[0]["netns"],
                          "pid": proxy.pid, "alive": True}], listeners

    before = sonic.stats()
    # One client connection carrying three requests, one upstream connection.
    n = 300000
    url = "http://%s:%d/bytes?n=%d" % (connect, port, n)
    body = running.curl(url, url, url)
    assert body == pattern(n) * 3
    d = delta(sonic.stats(), before)
    assert d["inserted"] == 4, d          # curl's socket, sonic's two, the origin's
    assert d["skipped_not_proxy"] == 0, d
    assert d["misses"] == 0, d
    assert d["redirect_bytes"] >= 3 * n, d

    # The same cgroup, the same attachment: curl straight to the origin is
    # not a proxy leg, and goes through the stack.
    before = sonic.stats()
    direct = running.curl("http://127.0.0.1:%d/bytes?n=%d" % (origin, n))
    assert hashlib.sha256(direct).digest() == hashlib.sha256(pattern(n)).digest()
    d = delta(sonic.stats(), before)
    assert d["skipped_not_proxy"] == 2 and d["inserted"] == 0 and d["redirects"] == 0, d

    # The proxy forgets its listener when it exits.
    proxy.send_signal(signal.SIGTERM)
    proxy.wait(15)
    assert sonic.ok("accel", "status")["proxy_listeners"] == []


def test_scope_all_accelerates_every_local_connection_again(sonic, cgroup, running):
    sonic.ok("accel", "enable", "cgroup", cgroup, "scope", "proxy")
    # Enabling again with the other scope rewrites the attachment's configuration.
    again = sonic.ok("accel", "enable", "cgroup", cgroup)
    assert again["changed"] is True and again["scope"] == "all"
    origin = running.origin()
    before = sonic.stats()
    running.curl("http://127.0.0.1:%d/bytes?n=1000" % origin)
    d = delta(sonic.stats(), before)
    assert d["inserted"] == 2 and d["skipped_not_proxy"] == 0, d


def tunnel_bytes(admin_port):
    """sonic_tunnel_bytes_total of /metrics, summed by path."""
    values = proxyrun.metrics(admin_port, timeout=20)
    paths = {"spliced": 0, "copied": 0}
    paths.update(proxyrun.sum_by(values, "sonic_tunnel_bytes_total", "path"))
    return paths


def test_a_tunnel_between_accelerated_legs_is_copied_not_spliced(sonic, cgroup, running, tmp_path):
    """The splice program never sees bytes the accel program moves into a
    socket, so a CONNECT tunnel whose legs are accelerated must be copied;
    spliced, it would stall with the bytes in the proxy's socket."""
    sonic.ok("prog", "load")
    sonic.ok("accel", "enable", "cgroup", cgroup, "scope", "proxy")
    origin = running.origin()
    conf = sonicconf.Config().admin()
    conf.mode = "forward"
    running.sonic(sonic.bpffs, "--config", conf.write(str(tmp_path)), port=conf.listen_port)

    before = sonic.stats()
    n = 3 << 20
    body = running.curl("-p", "-x", "http://127.0.0.1:%d" % conf.listen_port,
                        "http://127.0.0.1:%d/bytes?n=%d" % (origin, n))
    assert len(body) == n and body == pattern(n)
    d = delta(sonic.stats(), before)
    assert d["inserted"] == 4 and d["redirect_bytes"] >= n, d
    assert wait_for(lambda: tunnel_bytes(conf.admin_port)["copied"] >= n)
    assert tunnel_bytes(conf.admin_port)["spliced"] == 0


def test_a_reload_records_the_listeners_in_a_family_loaded_again(sonic, cgroup, running):
    sonic.ok("accel", "enable", "cgroup", cgroup, "scope", "proxy")
    origin = running.origin()
    port = proxyrun.free_port()
    proxy = running.sonic(sonic.bpffs, "--mode", "reverse", "--listen", "127.0.0.1:%d" % port,
                          "--upstream", "127.0.0.1:%d" % origin, "--workers", "1", port=port)
    assert len(sonic.ok("accel", "status")["proxy_listeners"]) == 1

    # The family goes and comes back; the proxy still holds the old maps.
    sonic.ok("prog", "unload")
    sonic.ok("accel", "enable", "cgroup", cgroup, "scope", "proxy")
    assert sonic.ok("accel", "status")["proxy_listeners"] == []
    proxy.send_signal(signal.SIGHUP)
    assert wait_for(lambda: [l["pid"] for l in sonic.ok("accel", "status")["proxy_listeners"]] == [proxy.pid])

    before = sonic.stats()
    n = 100000
    assert running.curl("http://127.0.0.1:%d/bytes?n=%d" % (port, n)) == pattern(n)
    d = delta(sonic.stats(), before)
    assert d["inserted"] == 4 and d["misses"] == 0 and d["redirect_bytes"] >= n, d
