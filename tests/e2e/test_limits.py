"""[limits] in action: connections per client address and for the whole
process (a new connection over either is closed at once), the request rate
per address (503 with Retry-After), each counted on /metrics and never
reaching the origin; and a sonic out of descriptors (ulimit -n 256 against
600 connections) that pauses accepting instead of spinning, closes idle
keep-alive connections to make room and serves normally afterwards."""
import os
import select
import socket
import time

import sonicconf
import sonictest
from conftest import connect
from origin import read_response
from proxyrun import metrics  # noqa: E402

GET = b"GET /echo HTTP/1.1\r\nHost: h\r\n\r\n"


def connect_from(source, port, timeout=10.0):
    """A connection from SOURCE (any 127.0.0.0/8 address is this host's)."""
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def keep(sockets, s):
    """S, added to the test's sockets (closed on teardown)."""
    sockets.append(s)
    return s


def served(s):
    """Whether a request on S gets a 200 (False: closed without a response)."""
    try:
        s.sendall(GET)
        status, _, _, _ = read_response(s)
        return status == 200
    except (OSError, Exception) as e:  # PeerGone, reset
        if isinstance(e, AssertionError):
            raise
        return False


def test_connections_per_address_hold_across_workers(sonic_run, origin, sockets):
    cfg = sonicconf.Config(workers=2).reverse(origin.address).admin().limits(max_connections_per_ip=5)
    p = sonic_run.config(cfg)
    held = []
    for _ in range(5):
        s = keep(sockets, connect_from("127.0.0.1", p.port))
        assert served(s)
        held.append(s)
    # Whichever worker the kernel picks, the sixth from this address is
    # closed at once, without a response, and the origin never sees it.
    before = len(origin.paths())
    for _ in range(4):
        s = keep(sockets, connect_from("127.0.0.1", p.port))
        assert not served(s)
        s.close()
    assert len(origin.paths()) == before
    # Another address is not affected.
    other = keep(sockets, connect_from("127.0.0.2", p.port))
    assert served(other)
    m = metrics(cfg.admin_port)
    assert m['sonic_connections_refused_total{limit="max_connections_per_ip"}'] == 4, m
    # One of the five goes: its place is free again.
    held.pop().close()
    assert sonictest.wait_for(lambda: served(keep(sockets, connect_from("127.0.0.1", p.port))), 5)


def test_max_connections_of_the_process(sonic_run, origin, sockets):
    cfg = sonicconf.Config(workers=1).reverse(origin.address).admin().limits(max_connections=4)
    p = sonic_run.config(cfg)
    held = [keep(sockets, connect(p.port)) for _ in range(4)]
    for s in held:
        assert served(s)
    late = keep(sockets, connect_from("127.0.0.3", p.port))
    assert not served(late)
    m = metrics(cfg.admin_port)
    assert m['sonic_connections_refused_total{limit="max_connections"}'] >= 1, m
    for s in held:
        s.close()
    assert sonictest.wait_for(lambda: served(keep(sockets, connect(p.port))), 5)


def test_request_rate_per_address(sonic_run, origin):
    cfg = (sonicconf.Config().reverse(origin.address).admin()
           .limits(requests_per_second_per_ip=2, request_burst_per_ip=4))
    p = sonic_run.config(cfg)
    s = connect_from("127.0.0.1", p.port)
    for _ in range(4):  # the burst, on one keep-alive connection
        s.sendall(GET)
        assert read_response(s)[0] == 200
    before = len(origin.paths())
    s.sendall(GET)
    status, headers, body, _ = read_response(s)
    assert status == 503, body
    assert int(headers["retry-after"]) >= 1
    assert headers.get("connection") == "close"
    s.close()
    # Two more connections from the same address: still over the rate.
    for _ in range(2):
        s = connect_from("127.0.0.1", p.port)
        s.sendall(GET)
        assert read_response(s)[0] == 503
        s.close()
    assert len(origin.paths()) == before, "a limited request reached the origin"
    # Another address has a bucket of its own.
    s = connect_from("127.0.0.2", p.port)
    s.sendall(GET)
    assert read_response(s)[0] == 200
    s.close()
    # Tokens come back at 2 per second.
    time.sleep(1.1)
    s = connect_from("127.0.0.1", p.port)
    s.sendall(GET)
    assert read_response(s)[0] == 200
    s.close()
    assert metrics(cfg.admin_port)["sonic_requests_rate_limited_total"] == 3


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_out_of_descriptors_pauses_accepting_then_serves(sonic_run, origin, sockets):
    """ulimit -n 256 and 600 connections: sonic takes what its descriptors
    allow, leaves the rest in the listen queue without spinning, makes room
    by closing idle keep-alive connections, and answers all 600."""
    cfg = sonicconf.Config(workers=1).reverse(origin.address).admin().timeouts(client_header=60)
    p = sonic_run.config(cfg, wrapper=["prlimit", "--nofile=256:256"])
    clients = [keep(sockets, connect(p.port, timeout=30)) for _ in range(600)]  # the kernel queues what sonic does not accept
    # Saturated: every connection sonic holds waits for its request.
    time.sleep(1)
    t0, c0 = time.monotonic(), cpu_seconds(p.pid)
    time.sleep(4)
    cpu = (cpu_seconds(p.pid) - c0) / (time.monotonic() - t0)
    assert cpu < 0.5, "sonic used %.0f%% CPU while it could not accept" % (cpu * 100)
    assert p.alive()
    assert "accept on" in p.stderr() and "paused" in p.stderr(), p.stderr()[-2000:]
    # Every client sends its request: those served turn idle keep-alive and
    # are closed to make room for those still queued.
    for s in clients:
        s.sendall(GET)
    pending = {s.fileno(): s for s in clients}
    answers = {}
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        ready, _, _ = select.select(list(pending.values())[:1000], [], [], 1)
        for s in ready:
            try:
                status, _, _, _ = read_response(s)
            except Exception:
                status = None
            answers[s.fileno()] = status
            del pending[s.fileno()]
    statuses = list(answers.values())
    assert not pending, "%d clients never got an answer" % len(pending)
    assert statuses.count(200) == 600, {st: statuses.count(st) for st in set(statuses)}
    m = metrics(cfg.admin_port)
    assert m["sonic_idle_closed_for_room_total"] > 0, m
    for s in clients:
        s.close()
    # Afterwards: served as usual.
    for _ in range(50):
        s = keep(sockets, connect(p.port))
        assert served(s)
        s.close()
    assert p.alive()
