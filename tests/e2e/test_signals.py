"""SIGHUP reloads under load without losing a request (and really reloads);
a bad config on SIGHUP keeps the old one; SIGTERM drains in-flight
requests, stops accepting and exits 0."""
import signal
import threading
import time

import sonicconf
from conftest import connect
from origin import read_response


class Load:
    """N client threads sending keep-alive requests until stopped; every
    failure (error, non-200, connection lost mid-response) is kept."""

    def __init__(self, port, clients=4, seconds=20):
        self.port = port
        self.stop_at = time.time() + seconds
        self.stopped = threading.Event()
        self.ok = 0
        self.failures = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(clients)]

    def run(self, i):
        s, rest = None, b""
        n = 0
        while not self.stopped.is_set() and time.time() < self.stop_at:
            try:
                if s is None:
                    s, rest = connect(self.port, timeout=10), b""
                s.sendall(b"GET /echo?c=%d&n=%d HTTP/1.1\r\nHost: h\r\n\r\n" % (i, n))
                status, headers, _, rest = read_response(s, rest)
                if status != 200:
                    raise RuntimeError("status %d" % status)
                with self.lock:
                    self.ok += 1
                if headers.get("connection", "").lower() == "close":
                    s.close()
                    s = None
            except Exception as e:  # every kind of failure counts
                with self.lock:
                    self.failures.append("client %d request %d: %r" % (i, n, e))
                if s:
                    s.close()
                s = None
            n += 1
        if s:
            s.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        for t in self.threads:
            t.join(15)


def test_sighup_reload_under_load_loses_nothing(sonic_run, origin_factory):
    first, second = origin_factory(), origin_factory()
    cfg = sonicconf.Config().reverse(first.address)
    p = sonic_run.config(cfg)
    with Load(p.port) as load:
        time.sleep(1)
        for _ in range(3):
            p.signal(signal.SIGHUP)
            time.sleep(0.5)
        cfg.reverse(second.address)
        cfg.write(None)
        p.signal(signal.SIGHUP)
        deadline = time.time() + 5
        while not second.requests_to("/echo") and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(1)
    assert not load.failures, "%d of %d requests failed across reloads: %s" % (
        len(load.failures), load.ok + len(load.failures), load.failures[:5])
    assert load.ok > 100
    assert first.requests_to("/echo"), "nothing reached the first origin"
    assert second.requests_to("/echo"), "the reloaded route was never used"
    assert p.alive()


def test_sighup_with_bad_config_keeps_serving(sonic_run, origin):
    cfg = sonicconf.Config().reverse(origin.address)
    p = sonic_run.config(cfg)
    with open(cfg.path, "w") as f:
        f.write("[server\nbroken = \n")
    p.signal(signal.SIGHUP)
    time.sleep(1)
    assert p.alive()
    s = connect(p.port)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: h\r\n\r\n")
    status, _, _, _ = read_response(s)
    s.close()
    assert status == 200
    assert cfg.path in p.stderr(), "the failed reload was not reported: %r" % p.stderr()[-500:]


def test_sigterm_drains_in_flight(sonic_run, origin):
    p = sonic_run.reverse(origin.address)
    results = {}

    def slow(name, delay):
        try:
            s = connect(p.port, timeout=20)
            s.sendall(b"GET /slow?delay=%s HTTP/1.1\r\nHost: h\r\n\r\n" % delay.encode())
            results[name] = read_response(s)[0]
            s.close()
        except Exception as e:
            results[name] = repr(e)

    threads = [threading.Thread(target=slow, args=("r%d" % i, "2")) for i in range(5)]
    for t in threads:
        t.start()
    deadline = time.time() + 5
    while len(origin.requests_to("/slow")) < 5 and time.time() < deadline:
        time.sleep(0.05)
    assert len(origin.requests_to("/slow")) == 5
    sent = time.time()
    p.signal(signal.SIGTERM)
    time.sleep(0.5)
    refused = False
    try:
        c = connect(p.port, timeout=2)
        c.sendall(b"GET /echo HTTP/1.1\r\nHost: h\r\n\r\n")
        c.settimeout(2)
        refused = c.recv(100) == b""
        c.close()
    except OSError:
        refused = True
    assert refused, "sonic still accepts and serves new connections while draining"
    for t in threads:
        t.join(20)
    assert results == {"r%d" % i: 200 for i in range(5)}, results
    p.proc.wait(10)
    assert p.proc.returncode == 0, p.stderr()
    assert time.time() - sent < 8
    p.expected_exit = True
