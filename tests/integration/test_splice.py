"""The splice family through a real relay (tests/integration/splice_relay.cpp):
clients on one side, servers on the other, the relay pairing the sockets with
core/bpf/splice.hpp (root)."""
import hashlib
import json
import os
import socket
import struct
import subprocess
import threading
import time

import pytest

import sonictest
from sonictest import tcp_mem_pages

MiB = 1 << 20
RELAY = os.environ.get("SONIC_SPLICE_RELAY_BIN") or os.path.join(
    os.environ.get("SONIC_BUILD_DIR", "build"), "splice_relay")


def payload(n, seed):
    """N deterministic pseudo-random bytes (cheap to make, hard to confuse)."""
    out = bytearray()
    block = hashlib.sha256(b"%d" % seed).digest()
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:n])


def send_all(sock, data, chunk=1 << 16):
    view = memoryview(data)
    for off in range(0, len(view), chunk):
        sock.sendall(view[off:off + chunk])


def recv_to_eof(sock, pause_every=0, pause=0.0):
    h = hashlib.sha256()
    n = 0
    next_pause = pause_every or None
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return n, h.hexdigest()
        h.update(chunk)
        n += len(chunk)
        if next_pause and n >= next_pause:
            time.sleep(pause)
            next_pause += pause_every


def digest(data):
    return hashlib.sha256(data).hexdigest()


class Relay:
    """splice_relay between 127.0.0.1:<port> and a server port."""

    def __init__(self, bpffs, upstream_port, conns, *extra, prefix=()):
        argv = list(prefix) + [RELAY, "--bpffs", bpffs, "--upstream", "127.0.0.1:%d" % upstream_port,
                "--conns", str(conns)] + list(extra)
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening "), (line, self.proc.stderr.read() if self.proc.poll() else "")
        self.port = int(line.split()[1])

    def report(self, timeout=120):
        out, err = self.proc.communicate(timeout=sonictest.scaled(timeout))
        assert self.proc.returncode == 0, (out, err)
        return json.loads(out.strip().splitlines()[-1])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Server:
    """Accepts connections and runs HANDLER(sock, index) for each in a thread."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.errors = []
        self.results = {}
        self.threads = []
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _accept(self):
        accepted = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._run, args=(conn, accepted), daemon=True)
            accepted += 1
            t.start()
            self.threads.append(t)

    def _run(self, conn, accepted):
        try:
            with conn:
                conn.settimeout(sonictest.scaled(60))
                header = b""
                while len(header) < 4:
                    chunk = conn.recv(4 - len(header))
                    assert chunk, "connection %d closed before its index" % accepted
                    header += chunk
                index = struct.unpack("!I", header)[0]
                self.results[index] = self.handler(conn, index)
        except Exception as e:  # reported by join()
            self.errors.append("server (accepted %d): %r" % (accepted, e))

    def join(self, timeout=120):
        deadline = time.monotonic() + sonictest.scaled(timeout)
        for t in list(self.threads):
            t.join(max(0.1, deadline - time.monotonic()))
        self.sock.close()
        assert not self.errors, self.errors
        return self.results


@pytest.fixture
def relays():
    made = []

    def start(*args, **kw):
        r = Relay(*args, **kw)
        made.append(r)
        return r
    yield start
    for r in made:
        r.kill()


@pytest.fixture
def loaded(sonic):
    """sonic's programs loaded; skipped, with the kernel's reason, where
    splice cannot load (the relay then copies: tested below)."""
    sonictest.require_families("splice")
    sonic.ok("prog", "load")
    return sonic


def stats(sonic):
    return sonic.ok("stats", "splice")["splice"]


HEADER = 4  # bytes of the index every client sends first


def header(i):
    return struct.pack("!I", i)


def run_clients(port, count, client, send_header=True, rcvbuf=0):
    """Runs CLIENT(sock, i) on COUNT connections; each first sends its index
    (unless the client does it itself) so the server end knows which
    payloads belong to it."""
    results, errors = {}, []

    def one(i):
        try:
            with socket.socket() as s:
                if rcvbuf:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                s.settimeout(sonictest.scaled(60))
                s.connect(("127.0.0.1", port))
                if send_header:
                    s.sendall(header(i))
                results[i] = client(s, i)
        except Exception as e:
            errors.append("client %d: %r" % (i, e))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def relayed(relays, bpffs, conns, client, server_end, *extra, prefix=(), **client_options):
    """Runs CONNS clients (run_clients with CLIENT_OPTIONS) through a relay
    (with EXTRA arguments, under PREFIX) to a Server(SERVER_END); every
    client and every server end must succeed. Returns the relay's report."""
    server = Server(server_end)
    relay = relays(bpffs, server.port, conns, *extra, prefix=prefix)
    assert all(run_clients(relay.port, conns, client, **client_options).values())
    assert all(server.join().values())
    return relay.report()


def both_ways(size):
    """Each end sends SIZE bytes and shuts down writing while it receives."""
    def end(sock, seed_send, seed_recv):
        sender = threading.Thread(target=lambda: (send_all(sock, payload(size, seed_send)),
                                                  sock.shutdown(socket.SHUT_WR)))
        sender.start()
        got = recv_to_eof(sock)
        sender.join()
        return got == (size, digest(payload(size, seed_recv))) or "received %d of %d bytes, digest %s" % (
            got[0], size, "right" if got[1] == digest(payload(got[0], seed_recv)) else "wrong")
    return (lambda s, i: end(s, 1000 + i, 2000 + i)), (lambda s, i: end(s, 2000 + i, 1000 + i))


def test_16_tunnels_move_8mib_each_way_byte_identical_and_spliced(loaded, relays):
    size = 8 * MiB
    client, server_end = both_ways(size)
    server = Server(server_end)
    before = stats(loaded)
    relay = relays(loaded.bpffs, server.port, 16)
    ok = run_clients(relay.port, 16, client)
    assert all(v is True for v in ok.values()) and len(ok) == 16, ok
    assert all(v is True for v in server.join().values())
    report = relay.report()
    assert report["spliced"] == 16 and report["failed"] == 0 and report["discarded_bytes"] == 0, report
    after = stats(loaded)
    d = {k: after[k] - before[k] for k in after}
    total = 2 * 16 * size + 16 * HEADER
    assert d["redirect_bytes"] + d["passed_bytes"] == total, d
    assert d["redirect_bytes"] == total - report["copied_bytes"], (d, report)
    assert d["redirect_bytes"] >= 0.9 * total, d
    assert d["client_bytes"] + d["upstream_bytes"] == d["redirect_bytes"]
    assert after["tunnels"] == 0 and after["sockets"] == 0, after


def test_early_bytes_and_unread_bytes_keep_their_order(loaded, relays):
    """The relay forwards what it read before pairing; what it did not read
    is forwarded by the kernel after it."""
    size = 2 * MiB

    def client(s, i):
        data = payload(size, 10 + i)
        s.sendall(header(i) + data[:1000])  # read by the relay before pairing
        time.sleep(0.3)              # arrives while the relay is still waiting
        s.sendall(data[1000:5000])
        send_all(s, data[5000:])
        s.shutdown(socket.SHUT_WR)
        return recv_to_eof(s) == (0, digest(b""))

    def server_end(s, i):
        return recv_to_eof(s) == (size, digest(payload(size, 10 + i)))
    # The relay waits up to a second (scaled: a slow guest's client threads
    # may take longer to send) for the bytes it forwards itself.
    report = relayed(relays, loaded.bpffs, 4, client, server_end, "--early-wait",
                     str(int(sonictest.scaled(1000))), send_header=False)
    assert report["spliced"] == 4 and report["early_bytes"] >= 4 * 1000, report


def test_client_half_close_then_receives_the_rest(loaded, relays):
    """The client sends, shuts down writing and only then gets its answer:
    the server answers after it saw EOF, so the FIN went through, after the
    data."""
    up, down = 3 * MiB, 5 * MiB

    def client(s, i):
        send_all(s, payload(up, i))
        s.shutdown(socket.SHUT_WR)
        return recv_to_eof(s) == (down, digest(payload(down, 100 + i)))

    def server_end(s, i):
        got = recv_to_eof(s)
        send_all(s, payload(down, 100 + i))
        s.shutdown(socket.SHUT_WR)
        return got == (up, digest(payload(up, i)))
    report = relayed(relays, loaded.bpffs, 8, client, server_end)
    assert report["spliced"] == 8 and report["failed"] == 0, report


@pytest.mark.parametrize("how", ["shutdown", "close"])
def test_upstream_ends_first(loaded, relays, how):
    down, up = 6 * MiB, MiB

    def server_end(s, i):
        send_all(s, payload(down, 300 + i))
        if how == "close":
            return True
        s.shutdown(socket.SHUT_WR)
        return recv_to_eof(s) == (up, digest(payload(up, 400 + i)))

    def client(s, i):
        got = recv_to_eof(s)
        if how == "shutdown":
            send_all(s, payload(up, 400 + i))
            s.shutdown(socket.SHUT_WR)
        return got == (down, digest(payload(down, 300 + i)))
    report = relayed(relays, loaded.bpffs, 8, client, server_end)
    assert report["spliced"] == 8 and report["discarded_bytes"] == 0, report




def test_slow_reader_keeps_kernel_memory_bounded(loaded, relays):
    """A fast server and a client with a small receive buffer that reads
    64 KiB every 10 ms. Redirected data sits on the psock backlog, uncharged
    to any socket (TCP's window stays open and /proc/net/sockstat does not
    see it): without a limit the whole transfer piles up there. The
    direction falls back to copying when the backlog passes its limit, so
    what is in flight stays bounded, and every byte still arrives."""
    size = 64 * MiB
    peak = {"in_flight": 0, "tcp_mem": 0}
    base_mem = tcp_mem_pages()
    before = stats(loaded)

    def server_end(s, i):
        send_all(s, payload(size, 500 + i), chunk=1 << 20)
        s.shutdown(socket.SHUT_WR)
        return recv_to_eof(s) == (0, digest(b""))

    def client(s, i):
        got = bytearray()  # kept whole: a failure says where it went wrong
        n = 0
        next_sample = 0
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got += chunk
            n += len(chunk)
            if n < 16 * MiB:
                time.sleep(0.01)
            if n >= next_sample and n < 24 * MiB:
                next_sample += MiB
                sent = stats(loaded)["upstream_bytes"] - before["upstream_bytes"]
                copied = stats(loaded)["passed_bytes"] - before["passed_bytes"]
                peak["in_flight"] = max(peak["in_flight"], sent + copied - n)
                peak["tcp_mem"] = max(peak["tcp_mem"], (tcp_mem_pages() - base_mem) * 4096)
        s.shutdown(socket.SHUT_WR)
        want = payload(size, 500 + i)
        if got != want:
            blocks = range(0, min(n, size), 4096)
            differs = next((k for k in blocks if got[k:k + 4096] != want[k:k + 4096]), None)
            raise AssertionError("read %d of %d bytes; the first 4 KiB block that differs starts at %s"
                                 % (n, size, differs))
        return True
    report = relayed(relays, loaded.bpffs, 1, client, server_end, rcvbuf=128 << 10)
    after = stats(loaded)
    # The direction went to copying at least once; it may come back to the
    # kernel whenever the reader catches up, and leave again.
    assert after["overflows"] - before["overflows"] >= 1, (after, report, peak)
    assert after["overflows"] - after["resumed"] - (before["overflows"] - before["resumed"]) in (0, 1)
    assert report["copied_directions"] == 1 and report["discarded_bytes"] == 0, report
    # What the family guarantees: the backlog stops at 4 MiB while the
    # relay's send buffer is full and at 32 MiB (SONIC_SPLICE_BACKLOG_HARD_LIMIT)
    # in any case, on top of the send buffer (at most tcp_wmem's maximum) and
    # the client's receive buffer. Usually the first limit holds (about
    # 10 MiB in flight); when the send buffer is still growing the backlog
    # may pass it, never the second. An unbounded backlog would hold most of
    # the 64 MiB.
    with open("/proc/sys/net/ipv4/tcp_wmem") as f:
        wmem_max = int(f.read().split()[2])
    print("slow reader peaks:", peak)
    assert peak["in_flight"] < 32 * MiB + wmem_max + 2 * MiB, peak
    assert peak["in_flight"] < size * 3 // 4, peak
    assert peak["tcp_mem"] < 32 * MiB, peak


def test_without_the_family_the_relay_copies(sonic, relays):
    size = MiB
    client, server_end = both_ways(size)
    report = relayed(relays, sonic.bpffs, 4, client, server_end)
    assert report["spliced"] == 0 and report["copied_bytes"] == 2 * 4 * size + 4 * HEADER, report
    assert "not loaded" in report["unavailable"] and "sonic prog load" in report["unavailable"]
    r = sonic.run("-j", "stats", "splice")
    assert r.code == 3 and "not loaded" in r.error()["error"], r


def test_without_privileges_the_relay_copies_and_says_why(loaded, relays):
    size = MiB
    client, server_end = both_ways(size)
    report = relayed(relays, loaded.bpffs, 2, client, server_end,
                     prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    assert report["spliced"] == 0 and report["copied_bytes"] == 2 * 2 * size + 2 * HEADER, report
    assert "privilege" in report["unavailable"] or "ermission" in report["unavailable"], report


def test_unload_with_live_tunnels_loses_nothing_and_leaves_nothing(loaded, relays):
    size = 24 * MiB

    def both_ways(s, send_seed, expect_seed):
        sender = threading.Thread(target=lambda: (send_all(s, payload(size, send_seed)),
                                                  s.shutdown(socket.SHUT_WR)))
        sender.start()
        # The pauses (scaled) keep each tunnel open for seconds, however
        # fast the CPU moves the bytes, so that the unload meets all four.
        got = recv_to_eof(s, pause_every=4 * MiB, pause=sonictest.scaled(0.2))
        sender.join()
        return got == (size, digest(payload(size, expect_seed)))

    def client(s, i):
        return both_ways(s, 700 + i, 800 + i)

    def server_end(s, i):
        return both_ways(s, 800 + i, 700 + i)
    server = Server(server_end)
    relay = relays(loaded.bpffs, server.port, 4)
    results = {}
    clients = threading.Thread(target=lambda: results.update(run_clients(relay.port, 4, client)))
    clients.start()
    # All four tunnels spliced and busy: the unload below meets them live.
    # (Where the CPU is slow, the first tunnels can move 8 MiB before the
    # last one is set up.)
    live = sonictest.wait_for(lambda: (lambda st: st["tunnels"] == 4 and st["redirect_bytes"] >= 8 * MiB)(
        stats(loaded)), seconds=20)
    assert live, "four live tunnels with 8 MiB spliced: %s" % stats(loaded)
    unloaded = loaded.run("-j", "prog", "unload")
    assert unloaded.code == 0, unloaded
    assert unloaded.json()["splice_tunnels_left"] == 4, unloaded
    assert "keep running" in unloaded.err
    assert not os.path.exists(loaded.bpffs)
    clients.join()
    assert all(results.values()) and len(results) == 4, results
    assert all(server.join().values())
    report = relay.report()
    assert report["spliced"] == 4 and report["discarded_bytes"] == 0, report
    # The relay held the last references: nothing of splice is left.
    sonictest.wait_for(lambda: not sonictest.kernel_programs("splice_"), seconds=5, step=0.1)
    assert sonictest.kernel_programs("splice_") == []
