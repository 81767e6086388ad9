"""Reverse mode with real clients: GET and POST, 100-continue, 100 MB bodies
with bounded memory, chunked both ways, keep-alive reuse to the origin,
pipelining, HEAD framing, and wrk load without errors."""
import hashlib
import json
import os
import re
import socket
import subprocess
import threading
import time

import proxyrun
from conftest import connect
from origin import pattern, read_response

RSS_LIMIT_KB = 64 * 1024


def rss_limit_kb(proxy):
    """RSS_LIMIT_KB; under AddressSanitizer (SONIC_SANITIZE), whose shadow
    memory and quarantine make the idle process large already, the same
    allowance on top of the RSS before the transfer."""
    with open("/proc/%d/maps" % proxy.pid) as f:
        sanitized = "libasan" in f.read()
    return RSS_LIMIT_KB + (proxy.rss_kb() if sanitized else 0)


def curl(*args, timeout=60):
    r = subprocess.run(["curl", "-sS", "--max-time", str(timeout)] + [str(a) for a in args],
                       capture_output=True, timeout=timeout + 10)
    assert r.returncode == 0, "curl %s: %s" % (args, r.stderr.decode())
    return r.stdout


def test_get_with_curl(reverse, origin):
    out = curl("-H", "X-Test: one", "http://127.0.0.1:%d/echo?a=1&b=2" % reverse.port)
    j = json.loads(out)
    assert j["method"] == "GET"
    assert j["target"] == "/echo?a=1&b=2"
    headers = {k.lower(): v for k, v in j["headers"]}
    assert headers["x-test"] == "one"
    assert headers["host"] == "127.0.0.1:%d" % reverse.port
    assert j["body_len"] == 0


def test_hop_by_hop_headers_removed(reverse, origin):
    s = connect(reverse.port)
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\n"
              b"Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\nX-End: kept\r\n\r\n")
    status, _, body, _ = read_response(s)
    s.close()
    assert status == 200
    names = {k.lower() for k, _ in json.loads(body)["headers"]}
    assert "x-end" in names
    for hop in ("x-hop", "keep-alive", "te", "proxy-connection"):
        assert hop not in names, "hop-by-hop header %s reached the origin" % hop


def test_post_with_curl(reverse, origin, tmp_path):
    data = os.urandom(1 << 20)
    path = tmp_path / "body"
    path.write_bytes(data)
    # curl sends "Expect: 100-continue" for a body this size.
    j = json.loads(curl("--data-binary", "@%s" % path, "http://127.0.0.1:%d/echo" % reverse.port))
    assert j["method"] == "POST"
    assert j["body_len"] == len(data)
    assert j["body_sha256"] == hashlib.sha256(data).hexdigest()


def test_expect_100_continue(reverse, origin):
    s = connect(reverse.port, timeout=5)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    interim = s.recv(4096)
    assert interim.startswith(b"HTTP/1.1 100"), "no 100 Continue before the body: %r" % interim
    rest = interim.split(b"\r\n\r\n", 1)[1]
    s.sendall(b"hello")
    status, _, body, _ = read_response(s, rest)
    s.close()
    assert status == 200
    assert json.loads(body)["body"] == "hello"


class RssSampler:
    """Samples a process's VmRSS every 20 ms in a thread."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.peak = 0
        self.samples = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.done.is_set():
            self.peak = max(self.peak, self.proxy.rss_kb())
            self.samples += 1
            time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(5)


def test_100mb_upload_streamed_with_bounded_memory(reverse, origin):
    size = 100 << 20
    step = 1 << 20
    digest = hashlib.sha256()
    limit = rss_limit_kb(reverse)
    s = connect(reverse.port, timeout=60)
    with RssSampler(reverse) as rss:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % size)
        for off in range(0, size, step):
            chunk = pattern(step, off)
            digest.update(chunk)
            s.sendall(chunk)
        status, _, body, _ = read_response(s)
    s.close()
    j = json.loads(body)
    assert status == 200
    assert j["body_len"] == size and j["body_sha256"] == digest.hexdigest()
    assert rss.samples > 5
    assert rss.peak < limit, "sonic's RSS reached %d KiB streaming 100 MB up (limit %d)" % (rss.peak, limit)


def test_100mb_download_streamed_with_bounded_memory(reverse, origin):
    size = 100 << 20
    limit = rss_limit_kb(reverse)
    s = connect(reverse.port, timeout=60)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    with RssSampler(reverse) as rss:
        s.sendall(b"GET /bytes?n=%d HTTP/1.1\r\nHost: h\r\n\r\n" % size)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, buf = buf.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200")
        digest = hashlib.sha256(buf)
        got = len(buf)
        # A slow reader, so sonic has to hold back rather than buffer.
        while got < size:
            data = s.recv(1 << 20)
            assert data, "connection closed after %d of %d bytes" % (got, size)
            digest.update(data)
            got += len(data)
            if got < 8 << 20:
                time.sleep(0.01)
    s.close()
    assert got == size
    expect = hashlib.sha256()
    for off in range(0, size, 1 << 20):
        expect.update(pattern(1 << 20, off))
    assert digest.hexdigest() == expect.hexdigest()
    assert rss.peak < limit, "sonic's RSS reached %d KiB streaming 100 MB down (limit %d)" % (rss.peak, limit)


def test_chunked_request_body(reverse, origin):
    parts = [os.urandom(n) for n in (1, 100, 70000, 3)]
    s = connect(reverse.port)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    for p in parts:
        s.sendall(b"%x\r\n" % len(p) + p + b"\r\n")
        time.sleep(0.02)
    s.sendall(b"0\r\n\r\n")
    status, _, body, _ = read_response(s)
    s.close()
    j = json.loads(body)
    whole = b"".join(parts)
    assert status == 200
    assert j["body_len"] == len(whole) and j["body_sha256"] == hashlib.sha256(whole).hexdigest()


def test_chunked_request_with_curl(reverse, origin, tmp_path):
    data = os.urandom(300000)
    path = tmp_path / "body"
    path.write_bytes(data)
    out = curl("-H", "Transfer-Encoding: chunked", "--data-binary", "@%s" % path,
               "http://127.0.0.1:%d/echo" % reverse.port)
    j = json.loads(out)
    assert j["body_sha256"] == hashlib.sha256(data).hexdigest()


def test_chunked_response(reverse, origin):
    out = curl("--raw", "-i", "http://127.0.0.1:%d/chunked?n=50&size=10000" % reverse.port)
    head, body = out.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200")
    s = connect(reverse.port)
    s.sendall(b"GET /chunked?n=50&size=10000 HTTP/1.1\r\nHost: h\r\n\r\n")
    status, _, body, _ = read_response(s)
    s.close()
    assert status == 200 and body == pattern(500000)


def http10_get(port, target):
    """An HTTP/1.0 GET of TARGET: the response's head and its body, read
    until the connection closes."""
    s = connect(port)
    s.sendall(b"GET %s HTTP/1.0\r\nHost: h\r\n\r\n" % target)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    return data.split(b"\r\n\r\n", 1)


def test_chunked_response_to_http10_client(reverse, origin):
    head, body = http10_get(reverse.port, b"/chunked?n=5&size=1000")
    assert b"chunked" not in head.lower(), "an HTTP/1.0 client got a chunked response: %r" % head
    assert body == pattern(5000)


class UntilCloseOrigin:
    """An origin whose responses have neither Content-Length nor chunked
    framing: the body ends when it closes (RFC 9112 6.3, rule 8)."""

    def __init__(self, body):
        self.body = body
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            with c:
                c.settimeout(10)
                head = b""
                while b"\r\n\r\n" not in head:
                    d = c.recv(4096)
                    if not d:
                        break
                    head += d
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
                for i in range(0, len(self.body), 7000):  # several reads on sonic's side
                    c.sendall(self.body[i:i + 7000])
                    time.sleep(0.01)

    def close(self):
        self.listener.close()


def test_a_response_that_ends_with_the_close_is_rechunked_for_http11_and_raw_for_http10(sonic_run):
    body = pattern(50000)
    o = UntilCloseOrigin(body)
    try:
        p = sonic_run.reverse(o.address)
        s = connect(p.port)
        s.sendall(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
        status, headers, got, _ = read_response(s)
        s.sendall(b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n")  # the client's connection stays open
        status2, _, got2, _ = read_response(s)
        s.close()
        assert status == 200 and got == body
        assert status2 == 200 and got2 == body
        assert headers.get("transfer-encoding", "").lower() == "chunked", headers

        head, raw = http10_get(p.port, b"/c")
        assert head.startswith(b"HTTP/1.1 200") and b"chunked" not in head.lower(), head
        assert b"connection: close" in head.lower(), head
        assert raw == body
    finally:
        o.close()


def test_keepalive_reuse_to_origin(reverse, origin):
    s = connect(reverse.port)
    rest = b""
    for i in range(50):
        s.sendall(b"GET /echo?i=%d HTTP/1.1\r\nHost: h\r\n\r\n" % i)
        status, _, _, rest = read_response(s, rest)
        assert status == 200
    s.close()
    for i in range(50):
        c = connect(reverse.port)
        c.sendall(b"GET /echo?j=%d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" % i)
        status, _, _, _ = read_response(c)
        c.close()
        assert status == 200
    assert len(origin.requests_to("/echo")) == 100
    assert origin.connections <= 2, \
        "100 sequential requests took %d origin connections (no upstream keep-alive)" % origin.connections


def test_pipelining_in_order(reverse, origin):
    reqs = []
    for i in range(10):
        if i % 3 == 1:
            reqs.append(b"POST /echo?i=%d HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc" % i)
        elif i % 3 == 2:
            reqs.append(b"GET /chunked?n=3&size=%d HTTP/1.1\r\nHost: h\r\n\r\n" % (100 + i))
        else:
            reqs.append(b"GET /echo?i=%d HTTP/1.1\r\nHost: h\r\n\r\n" % i)
    s = connect(reverse.port)
    s.sendall(b"".join(reqs))
    rest = b""
    for i in range(10):
        status, _, body, rest = read_response(s, rest)
        assert status == 200
        if i % 3 == 2:
            assert body == pattern(3 * (100 + i)), "response %d out of order" % i
        else:
            assert json.loads(body)["target"] == "/echo?i=%d" % i, "response %d out of order" % i
    s.close()
    targets = [r["target"] for r in origin.requests]
    assert targets == [r.split(b" ")[1].decode() for r in reqs]


def test_head_then_next_request(reverse, origin):
    s = connect(reverse.port)
    s.sendall(b"HEAD /bytes?n=5000 HTTP/1.1\r\nHost: h\r\n\r\nGET /echo?after HTTP/1.1\r\nHost: h\r\n\r\n")
    status, headers, body, rest = read_response(s, method="HEAD")
    assert status == 200 and body == b""
    status, _, body, _ = read_response(s, rest)
    s.close()
    assert json.loads(body)["target"] == "/echo?after"


def wrk(url, seconds=3, connections=20, extra=()):
    r = subprocess.run(["wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds, "--latency"] + list(extra) + [url],
                       capture_output=True, text=True, timeout=seconds + 30)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return requests, [int(x) for x in errors.groups()] if errors else [0, 0, 0, 0], \
        int(non2xx.group(1)) if non2xx else 0, out


def test_wrk_load_without_errors(reverse, origin):
    requests, errors, non2xx, out = wrk("http://127.0.0.1:%d/echo" % reverse.port)
    assert requests > 100, out
    assert errors == [0, 0, 0, 0], out
    assert non2xx == 0, out
    assert len(origin.requests_to("/echo")) >= requests
    assert origin.connections <= 20


def test_nginx_origin_file_through_sonic(sonic_run, tmp_path):
    nginx = proxyrun.Nginx(str(tmp_path), big_mib=8)
    try:
        p = sonic_run.reverse(nginx.address)
        via = curl("http://127.0.0.1:%d/big" % p.port)
        direct = curl("http://%s/big" % nginx.address)
        assert len(via) == 8 << 20
        assert hashlib.sha256(via).digest() == hashlib.sha256(direct).digest()
        assert curl("http://127.0.0.1:%d/" % p.port) == b"hello from nginx\n"
    finally:
        nginx.stop()
