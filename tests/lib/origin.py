#!/usr/bin/python3
"""A test origin server: threaded, plain sockets, one loopback port.

It parses HTTP/1.1 itself (no http.server) so a test can see exactly what a
proxy sent: every request it parsed is recorded with the number of the
connection it came on, so keep-alive reuse shows as few connections, a
smuggled request shows as a record nobody sent, and an aborted body shows as
an "aborted" event.

Endpoints (any method):
  /echo            JSON: method, path, headers, body_len, body_sha256, body
                   (when under 64 KiB), chunked, conn, expect_continue
  /bytes?n=N       N bytes of pattern() with Content-Length
  /chunked?n=K&size=S   K chunks of S bytes of pattern(), chunked encoding
  /slow?delay=S    answers after S seconds
  /upgrade         with "Upgrade:", 101 then echoes raw bytes until EOF
  /status?code=N   an empty response with status N
  /close           answers with Connection: close and closes
Request bodies (Content-Length or chunked) are read streaming and hashed,
never stored whole. "Expect: 100-continue" gets an interim 100 first.

  origin.py --self-check     runs the server against itself and exits 0/1
  origin.py --port P         serves until killed (benchmarks)
"""
import argparse
import hashlib
import json
import socket
import sys
import threading
import time
import urllib.parse

BODY_KEEP = 64 * 1024
HEADER_LIMIT = 64 * 1024


def pattern(n, offset=0):
    """N deterministic bytes starting at OFFSET of an endless pattern."""
    block = bytes(range(256)) * 256
    out = bytearray()
    pos = offset % len(block)
    while len(out) < n:
        take = min(n - len(out), len(block) - pos)
        out += block[pos:pos + take]
        pos = 0
    return bytes(out)


class BadRequest(Exception):
    pass


class PeerGone(Exception):
    pass


class Conn:
    """One accepted connection, read through a buffer."""

    def __init__(self, sock, number):
        self.sock = sock
        self.number = number
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise PeerGone()
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            if len(self.buf) > HEADER_LIMIT:
                raise BadRequest("line too long")
            self.fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > HEADER_LIMIT:
                raise BadRequest("header block too long")
            self.fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head

    def exactly(self, n, sink):
        while n > 0:
            if not self.buf:
                self.fill()
            take = self.buf[:n]
            self.buf = self.buf[len(take):]
            sink(take)
            n -= len(take)

    def send(self, data):
        self.sock.sendall(data)


class Request:
    def __init__(self, method, target, version, headers):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        url = urllib.parse.urlsplit(target)
        self.path = url.path or target
        self.query = dict(urllib.parse.parse_qsl(url.query))

    def header(self, name):
        values = [v for k, v in self.headers if k.lower() == name]
        return ",".join(values) if values else None


class Origin:
    """The server. start() binds 127.0.0.1 on a free port (or PORT). With
    TLS = (certfile, keyfile) every connection is TLS (its handshake in the
    connection's own thread)."""

    def __init__(self, port=0, tls=None):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(1024)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.requests = []      # dicts, in the order they were parsed
        self.events = []        # (kind, conn number, detail)
        self.connections = 0    # accepted so far
        self.open = {}          # conn number -> socket, while open
        self.stopping = False
        self.tls = None
        if tls:
            import ssl
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(*tls)
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)

    # -- lifecycle --------------------------------------------------------
    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            socks = list(self.open.values())
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    # -- what tests look at -----------------------------------------------
    def paths(self):
        with self.lock:
            return [r["path"] for r in self.requests]

    def requests_to(self, path):
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def events_of(self, kind):
        with self.lock:
            return [e for e in self.events if e[0] == kind]

    def open_connections(self):
        with self.lock:
            return len(self.open)

    def reset(self):
        with self.lock:
            self.requests.clear()
            self.events.clear()

    def event(self, kind, conn, detail=None):
        with self.lock:
            self.events.append((kind, conn, detail))

    # -- serving ----------------------------------------------------------
    def accept_loop(self):
        while not self.stopping:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
                self.open[number] = sock
            threading.Thread(target=self.serve, args=(sock, number), daemon=True).start()

    def serve(self, sock, number):
        if self.tls:
            try:
                sock = self.tls.wrap_socket(sock, server_side=True)
            except OSError as e:
                self.event("tls_failed", number, str(e))
                with self.lock:
                    self.open.pop(number, None)
                sock.close()
                return
            with self.lock:
                self.open[number] = sock
        conn = Conn(sock, number)
        try:
            while True:
                try:
                    if not self.one(conn):
                        break
                except PeerGone:
                    break
                except BadRequest as e:
                    self.event("bad_request", number, str(e))
                    conn.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    break
        except OSError:
            pass
        finally:
            with self.lock:
                self.open.pop(number, None)
            self.event("closed", number)
            sock.close()

    def one(self, conn):
        head = conn.head()
        lines = head.split(b"\r\n")
        try:
            method, target, version = lines[0].decode("latin-1").split(" ")
        except ValueError:
            raise BadRequest("request line %r" % lines[0])
        headers = []
        for raw in lines[1:]:
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep:
                raise BadRequest("header line %r" % raw)
            headers.append((name, value.strip(" \t")))
        req = Request(method, target, version, headers)
        record = {"method": method, "target": target, "path": req.path, "version": version,
                  "headers": headers, "conn": conn.number, "time": time.time()}
        with self.lock:
            self.requests.append(record)

        expect = (req.header("expect") or "").lower() == "100-continue"
        if expect:
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        if req.path == "/upgrade" and req.header("upgrade"):
            return self.upgrade(conn, req)
        if req.path == "/slow":
            time.sleep(float(req.query.get("delay", "5")))

        digest = hashlib.sha256()
        kept = bytearray()
        length = [0]

        def sink(data):
            digest.update(data)
            length[0] += len(data)
            if len(kept) < BODY_KEEP:
                kept.extend(data[:BODY_KEEP - len(kept)])

        te = (req.header("transfer-encoding") or "").lower()
        chunked = te.replace(" ", "").split(",")[-1] == "chunked"
        try:
            if chunked:
                self.read_chunked(conn, sink)
            elif req.header("content-length") is not None:
                try:
                    n = int(req.header("content-length"))
                except ValueError:
                    raise BadRequest("content-length")
                conn.exactly(n, sink)
        except PeerGone:
            self.event("aborted", conn.number, {"path": req.path, "received": length[0]})
            raise
        record.update(body_len=length[0], body_sha256=digest.hexdigest(), chunked=chunked)

        close = (req.header("connection") or "").lower() == "close" or req.version == "HTTP/1.0"
        if req.path == "/close":
            close = True
        self.respond(conn, req, bytes(kept), length[0], digest.hexdigest(), chunked, expect, close)
        return not close

    def read_chunked(self, conn, sink):
        while True:
            size_line = conn.line().split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise BadRequest("chunk size %r" % size_line)
            if size == 0:
                while conn.line():
                    pass
                return
            conn.exactly(size, sink)
            if conn.line() != b"":
                raise BadRequest("chunk data not followed by CRLF")

    def respond(self, conn, req, kept, length, sha, chunked, expect, close):
        extra = "Connection: close\r\n" if close else ""
        if req.path == "/bytes":
            n = int(req.query.get("n", "0"))
            conn.send(("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                       "Content-Length: %d\r\n%s\r\n" % (n, extra)).encode())
            step = 1 << 20
            for off in range(0, n if req.method != "HEAD" else 0, step):
                conn.send(pattern(min(step, n - off), off))
            return
        if req.path == "/chunked":
            k = int(req.query.get("n", "4"))
            size = int(req.query.get("size", "1000"))
            conn.send(("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                       "Transfer-Encoding: chunked\r\n%s\r\n" % extra).encode())
            for i in range(k):
                conn.send(b"%x\r\n" % size + pattern(size, i * size) + b"\r\n")
            conn.send(b"0\r\n\r\n")
            return
        if req.path == "/status":
            code = int(req.query.get("code", "200"))
            conn.send(("HTTP/1.1 %d Status\r\nContent-Length: 0\r\n%s\r\n" % (code, extra)).encode())
            return
        body = json.dumps({
            "method": req.method, "path": req.path, "target": req.target, "version": req.version,
            "headers": req.headers, "body_len": length, "body_sha256": sha,
            "body": kept.decode("latin-1") if length <= BODY_KEEP else None,
            "chunked": chunked, "conn": conn.number, "expect_continue": expect,
        }).encode()
        conn.send(("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
                   % (len(body), extra)).encode() + (body if req.method != "HEAD" else b""))

    def upgrade(self, conn, req):
        conn.send(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\nConnection: Upgrade\r\n\r\n"
                   % req.header("upgrade")).encode())
        self.event("upgraded", conn.number)
        if conn.buf:
            conn.send(conn.buf)
            conn.buf = b""
        while True:
            data = conn.sock.recv(65536)
            if not data:
                return False
            conn.send(data)


# -- a minimal client, used by the self-check and by tests ----------------
def read_response(sock, buf=b"", method="GET"):
    """Reads one response from SOCK. Returns (status, headers dict with
    lower-case names, body bytes, leftover bytes). Interim 1xx responses
    other than 101 are skipped."""
    while True:
        while b"\r\n\r\n" not in buf:
            data = sock.recv(65536)
            if not data:
                raise PeerGone("connection closed before a full response head (%r)" % buf[:200])
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.setdefault(k.strip().lower(), v.strip())
        if 100 <= status < 200 and status != 101:
            continue
        break
    if status in (101, 204, 304) or method == "HEAD" or (method == "CONNECT" and 200 <= status < 300):
        return status, headers, b"", buf
    body = bytearray()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            while b"\r\n" not in buf:
                buf += recv_some(sock)
            size_line, buf = buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while True:
                    while b"\r\n" not in buf:
                        buf += recv_some(sock)
                    trailer, buf = buf.split(b"\r\n", 1)
                    if not trailer:
                        break
                break
            while len(buf) < size + 2:
                buf += recv_some(sock)
            body += buf[:size]
            buf = buf[size + 2:]
    elif "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            buf += recv_some(sock)
        body += buf[:n]
        buf = buf[n:]
    else:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            buf += data
        body += buf
        buf = b""
    return status, headers, bytes(body), buf


def recv_some(sock):
    data = sock.recv(65536)
    if not data:
        raise PeerGone("connection closed mid-body")
    return data


def self_check():
    """The origin against itself: every endpoint, counted connections and
    recorded requests. Exits 1 on the first mismatch."""
    failures = []

    def check(what, ok):
        print("%-50s %s" % (what, "ok" if ok else "FAIL"))
        if not ok:
            failures.append(what)

    with Origin() as o:
        s = socket.create_connection(("127.0.0.1", o.port))
        s.sendall(b"GET /echo?x=1 HTTP/1.1\r\nHost: a\r\nX-T: 1\r\n\r\n")
        st, h, body, rest = read_response(s)
        j = json.loads(body)
        check("GET /echo", st == 200 and j["method"] == "GET" and ["X-T", "1"] in j["headers"])
        payload = pattern(300000, 7)
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
        st, h, body, rest = read_response(s, rest)
        j = json.loads(body)
        check("POST Content-Length body hashed", j["body_len"] == len(payload)
              and j["body_sha256"] == hashlib.sha256(payload).hexdigest())
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n")
        st, h, body, rest = read_response(s, rest)
        j = json.loads(body)
        check("POST chunked body", j["body"] == "abcde" and j["chunked"])
        s.sendall(b"GET /chunked?n=3&size=5000 HTTP/1.1\r\nHost: a\r\n\r\n")
        st, h, body, rest = read_response(s, rest)
        check("chunked response", body == pattern(15000))
        s.sendall(b"GET /bytes?n=3000000 HTTP/1.1\r\nHost: a\r\n\r\n")
        st, h, body, rest = read_response(s, rest)
        check("large response", body == pattern(3000000))
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: a\r\n\r\nGET /status?code=404 HTTP/1.1\r\nHost: a\r\n\r\n")
        st1, _, _, rest = read_response(s, rest)
        st2, _, _, rest = read_response(s, rest)
        check("pipelined pair in order", (st1, st2) == (200, 404))
        check("one connection for all of it", o.connections == 1)
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        s.settimeout(5)
        interim = s.recv(100)
        check("100-continue before the body", interim.startswith(b"HTTP/1.1 100"))
        s.sendall(b"hi")
        st, h, body, rest = read_response(s)
        check("body after 100-continue", json.loads(body)["body"] == "hi")
        s.close()

        u = socket.create_connection(("127.0.0.1", o.port))
        u.sendall(b"GET /upgrade HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        st, h, body, rest = read_response(u)
        u.sendall(b"ping")
        got = rest
        while len(got) < 4:
            got += u.recv(10)
        check("upgrade then raw echo", st == 101 and got == b"ping")
        u.close()

        a = socket.create_connection(("127.0.0.1", o.port))
        a.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly-part")
        time.sleep(0.2)
        a.close()
        deadline = time.time() + 5
        while not o.events_of("aborted") and time.time() < deadline:
            time.sleep(0.05)
        check("aborted body recorded", len(o.events_of("aborted")) == 1)

        t = time.time()
        w = socket.create_connection(("127.0.0.1", o.port))
        w.sendall(b"GET /slow?delay=0.5 HTTP/1.1\r\nHost: a\r\n\r\n")
        st, _, _, _ = read_response(w)
        check("slow waits", st == 200 and time.time() - t >= 0.5)
        w.close()
        check("connections counted", o.connections == 4)
    print("self-check: %s" % ("FAILED: " + ", ".join(failures) if failures else "all ok"))
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--self-check", action="store_true")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    if args.self_check:
        return self_check()
    o = Origin(args.port).start()
    print(o.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        o.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
