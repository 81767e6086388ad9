#!/usr/bin/python3
"""Moves random data both ways over N concurrent TCP connections and checks
that every byte arrives intact and in order.

Server and clients live in this one process, so running it inside a cgroup
puts both ends of every connection there. Prints a JSON report; exits 1 if
any connection lost, reordered or corrupted a byte.

  mover.py --conns 64 --bytes 1048576 --family 4
  mover.py --family 6                       # over ::1
  mover.py --family dual                    # [::] listener, 127.0.0.1 client
  mover.py --pause-every 4194304 --pause 0.2  # readers stop now and then
"""
import argparse
import hashlib
import json
import os
import socket
import sys
import threading
import time


class End:
    """One end of a connection: sends its payload, receives the peer's."""

    def __init__(self, sock, payload, expect_digest, size, args):
        self.sock = sock
        self.payload = payload
        self.expect = expect_digest
        self.size = size
        self.args = args
        self.error = None
        self.received = 0

    def send(self):
        try:
            view = memoryview(self.payload)
            step = self.args.write_size
            for off in range(0, len(view), step):
                self.sock.sendall(view[off:off + step])
        except Exception as e:  # reported, never swallowed
            self.error = "send: %r" % e

    def recv(self):
        h = hashlib.sha256()
        next_pause = self.args.pause_every or None
        try:
            while self.received < self.size:
                chunk = self.sock.recv(min(1 << 16, self.size - self.received))
                if not chunk:
                    self.error = "peer closed after %d of %d bytes" % (self.received, self.size)
                    return
                h.update(chunk)
                self.received += len(chunk)
                if next_pause and self.received >= next_pause:
                    time.sleep(self.args.pause)
                    next_pause += self.args.pause_every
            if h.digest() != self.expect:
                self.error = "data differs (%d bytes received)" % self.received
        except Exception as e:
            self.error = "recv: %r" % e

    def run(self):
        t = threading.Thread(target=self.send)
        t.start()
        self.recv()
        t.join()


def recv_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def pingpong(client, server, rounds):
    """Request/echo rounds after the bulk transfer: a direction that moved to
    the stack under load comes back to acceleration once the load is gone."""
    try:
        for r in range(rounds):
            msg = os.urandom(64)
            client.sendall(msg)
            got = recv_exactly(server, 64)
            server.sendall(got)
            if recv_exactly(client, 64) != msg:
                return "pingpong round %d: echo differs" % r
    except Exception as e:
        return "pingpong: %r" % e
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--bytes", type=int, default=1 << 20)
    ap.add_argument("--family", choices=["4", "6", "dual"], default="4")
    ap.add_argument("--write-size", type=int, default=1 << 16)
    ap.add_argument("--pause-every", type=int, default=0, help="readers pause after every N bytes")
    ap.add_argument("--pause", type=float, default=0.0, help="seconds each pause lasts")
    ap.add_argument("--pingpong", type=int, default=0,
                    help="after the transfer, this many 64-byte request/echo rounds per connection")
    ap.add_argument("--hold", type=float, default=0.0, help="keep sockets open this long after the transfer")
    # Scaled like every wait of the tests (tests/lib/sonictest.py).
    ap.add_argument("--timeout", type=float, default=120.0 * float(os.environ.get("SONIC_TEST_TIME_SCALE") or 1))
    ap.add_argument("--port", type=int, default=0, help="listen on this port (default: any)")
    ap.add_argument("--address", default=None, help="listen on and connect to this address")
    args = ap.parse_args()

    if args.family == "4":
        lfam, laddr, caddr = socket.AF_INET, "127.0.0.1", "127.0.0.1"
    elif args.family == "6":
        lfam, laddr, caddr = socket.AF_INET6, "::1", "::1"
    else:
        lfam, laddr, caddr = socket.AF_INET6, "::", "127.0.0.1"
    if args.address:
        laddr = caddr = args.address
    listener = socket.socket(lfam, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if lfam == socket.AF_INET6:
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    listener.bind((laddr, args.port))
    listener.listen(args.conns)
    port = listener.getsockname()[1]

    pairs = []
    for i in range(args.conns):
        c = socket.create_connection((caddr, port), timeout=args.timeout)
        s, _ = listener.accept()
        s.settimeout(args.timeout)
        up = os.urandom(args.bytes)
        down = os.urandom(args.bytes)
        pairs.append((End(c, up, hashlib.sha256(down).digest(), args.bytes, args),
                      End(s, down, hashlib.sha256(up).digest(), args.bytes, args)))

    start = time.monotonic()
    threads = [threading.Thread(target=e.run) for pair in pairs for e in pair]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - start

    failures = []
    for i, (client, server) in enumerate(pairs):
        for name, e in (("client", client), ("server", server)):
            if e.error:
                failures.append({"conn": i, "end": name, "error": e.error})
    for i, (client, server) in enumerate(pairs):
        error = pingpong(client.sock, server.sock, args.pingpong)
        if error:
            failures.append({"conn": i, "end": "pingpong", "error": error})
    time.sleep(args.hold)

    for client, server in pairs:
        client.sock.close()
        server.sock.close()
    report = {"ok": not failures, "conns": args.conns, "bytes_each_way": args.bytes,
              "family": args.family, "port": port, "seconds": round(seconds, 3),
              "failures": failures[:10]}
    print(json.dumps(report))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
