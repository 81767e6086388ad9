"""Slow clients do not slow the others down: 1000 slowloris connections
(heads that never end, a header line a second) against a one-worker sonic,
kept at 1000 should sonic time them out, while a normal client makes 2000
requests that all get 200."""
import selectors
import socket
import threading
import time

import sonicconf
from conftest import connect
from origin import read_response
from proxyrun import metrics  # noqa: E402


class Slowloris:
    """Holds N connections that each send a request line and then one more
    header line every INTERVAL seconds, reopening those sonic closes."""

    def __init__(self, port, n, interval=1.0):
        self.port, self.n, self.interval = port, n, interval
        self.socks = set()
        self.opened = 0
        self.most_open = 0
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)

    def open_one(self):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        self.socks.add(s)
        self.opened += 1
        return s

    def send(self, s, data):
        try:
            s.send(data)
            return True
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False

    def run(self):
        sel = selectors.DefaultSelector()
        fresh = []
        while not self.stopping:
            while len(self.socks) < self.n:
                s = self.open_one()
                sel.register(s, selectors.EVENT_READ)
                fresh.append(s)
            # The request line once connected; then a header line a tick.
            for s in fresh:
                self.send(s, b"GET /echo HTTP/1.1\r\nHost: h\r\n")
            fresh = []
            self.most_open = max(self.most_open, len(self.socks))
            tick = time.monotonic() + self.interval
            while time.monotonic() < tick and not self.stopping:
                for key, _ in sel.select(max(0.0, tick - time.monotonic())):
                    s = key.fileobj
                    try:
                        gone = not s.recv(4096)  # sonic's 408, then the close
                    except (BlockingIOError, InterruptedError):
                        gone = False
                    except OSError:
                        gone = True
                    if gone:
                        sel.unregister(s)
                        self.socks.discard(s)
                        s.close()
            for s in list(self.socks):
                if not self.send(s, b"X-Slow-%d: x\r\n" % self.opened):
                    sel.unregister(s)
                    self.socks.discard(s)
                    s.close()
        for s in self.socks:
            sel.unregister(s)
            s.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.thread.join(30)


def test_slowloris_does_not_starve_a_normal_client(sonic_run, origin, sockets):
    cfg = sonicconf.Config(workers=1).reverse(origin.address)  # client_header 10 s, the default
    p = sonic_run.config(cfg)
    with Slowloris(p.port, 1000) as attack:
        deadline = time.monotonic() + 30
        while attack.most_open < 1000 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert attack.most_open == 1000
        statuses = []
        started = time.monotonic()
        s = connect(p.port)
        sockets.append(s)
        rest = b""
        for i in range(2000):
            assert time.monotonic() - started < 30, "%d requests took 30 s under the attack" % i
            if i % 100 == 0:  # now and then a new connection, as clients make
                s.close()
                s = connect(p.port)
                sockets.append(s)
                rest = b""
            s.sendall(b"GET /echo?%d HTTP/1.1\r\nHost: h\r\n\r\n" % i)
            status, _, _, rest = read_response(s, rest)
            statuses.append(status)
        s.close()
        took = time.monotonic() - started
        held = len(attack.socks)
    assert statuses.count(200) == 2000, {st: statuses.count(st) for st in set(statuses)}
    assert held >= 990, "the attack held only %d connections at the end" % held
    assert took < 30, "2000 requests took %.1f s under the attack" % took
    assert p.alive()


def test_a_dribbled_small_body_holds_no_upstream(sonic_run, origin, sockets):
    """A Content-Length body that fits sonic's buffer is read whole before
    an upstream connection is taken (slowhttptest -B against the origin)."""
    p = sonic_run.reverse(origin.address)
    connections = origin.connections
    s = connect(p.port)
    sockets.append(s)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 20\r\n\r\n0123456789")
    time.sleep(1)
    assert origin.connections == connections and not origin.requests_to("/echo"), \
        "the origin was reached before the body was complete"
    s.sendall(b"abcdefghij")
    status, _, body, _ = read_response(s)
    s.close()
    assert status == 200
    assert b'"body": "0123456789abcdefghij"' in body


def test_heads_that_time_out_together_end_a_few_per_loop_turn(sonic_run, origin, sockets):
    """300 heads that never end time out in the same sweep: each is answered
    408 and closed, and those past the first few of a turn wait for a later
    one (sonic_timeout_waits_total), so open connections are polled between
    them."""
    cfg = sonicconf.Config(workers=1).reverse(origin.address).admin().timeouts(client_header=1)
    p = sonic_run.config(cfg)
    assert metrics(cfg.admin_port)["sonic_timeout_waits_total"] == 0
    slow = []
    for _ in range(300):
        s = connect(p.port)
        sockets.append(s)
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: h\r\n")
        slow.append(s)
    answers = []
    for s in slow:
        s.settimeout(10)
        status, _, _, _ = read_response(s)
        answers.append(status)
        assert s.recv(1) == b"", "the connection stayed open after its 408"
    assert answers == [408] * 300, {a: answers.count(a) for a in set(answers)}
    # 8 endings a turn: nearly all of a burst that expired in one or two
    # sweeps waited their turn.
    waits = metrics(cfg.admin_port)["sonic_timeout_waits_total"]
    assert 150 <= waits < 300, waits
    # And a normal request is served as ever.
    s = connect(p.port)
    sockets.append(s)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: h\r\n\r\n")
    assert read_response(s)[0] == 200
