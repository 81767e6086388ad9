"""Tunnels: CONNECT through forward mode to a socat echo target, absolute-form
requests in forward mode, an Upgrade echo through reverse mode, and an L4
route (protocol = "tcp") moving bytes."""
import json
import os
import subprocess
import threading

import proxyrun
import sonicconf
import sonictest
from conftest import connect
from origin import read_response


def roundtrip(sock, data, rest=b""):
    """Sends DATA from a thread while reading the echo; returns what came back."""
    def send():
        view = memoryview(data)
        for off in range(0, len(view), 65536):
            sock.sendall(view[off:off + 65536])
    t = threading.Thread(target=send, daemon=True)
    t.start()
    got = bytearray(rest)
    while len(got) < len(data):
        d = sock.recv(1 << 20)
        if not d:
            break
        got += d
    t.join(30)
    return bytes(got)


def test_connect_through_forward_mode(sonic_run, echo_target):
    p = sonic_run.forward()
    s = connect(p.port, timeout=30)
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (echo_target, echo_target))
    try:
        status, _, _, rest = read_response(s, method="CONNECT")
        assert status == 200
        data = os.urandom(4 << 20)
        assert roundtrip(s, data, rest) == data
    finally:
        s.close()


def test_connect_to_refused_target_is_502(sonic_run):
    p = sonic_run.forward()
    dead = proxyrun.free_port()
    s = connect(p.port)
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (dead, dead))
    status, _, _, _ = read_response(s, method="CONNECT")
    s.close()
    assert status == 502


def test_forward_absolute_form_with_curl(sonic_run, origin):
    p = sonic_run.forward()
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "-x", "http://127.0.0.1:%d" % p.port,
                        "http://%s/echo?via=proxy" % origin.address], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout)
    assert j["target"] == "/echo?via=proxy", "the origin got %r, not origin-form" % j["target"]
    # curl -p: CONNECT tunnel, then the request inside it.
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "-p", "-x", "http://127.0.0.1:%d" % p.port,
                        "http://%s/echo?via=tunnel" % origin.address], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["target"] == "/echo?via=tunnel"


def test_upgrade_echo(reverse, origin):
    s = connect(reverse.port, timeout=30)
    s.sendall(b"GET /upgrade HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
    status, headers, _, rest = read_response(s)
    assert status == 101
    assert headers.get("upgrade") == "echo"
    data = os.urandom(2 << 20)
    assert roundtrip(s, data, rest) == data
    s.close()
    assert origin.events_of("upgraded")


def splice_stats():
    """`sonic -j stats splice` when this sonic has it, else None."""
    r = subprocess.run([sonictest.SONIC, "-j", "stats", "splice"], capture_output=True, text=True, timeout=20)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout).get("splice")


def test_l4_route_moves_bytes(sonic_run, echo_target):
    before = splice_stats()
    cfg = sonicconf.Config().tcp_route("127.0.0.1:%d" % echo_target)
    p = sonic_run.config(cfg)
    socks = [connect(p.port, timeout=30) for _ in range(4)]
    total = 0
    for s in socks:
        data = os.urandom(8 << 20)
        assert roundtrip(s, data) == data
        total += len(data)
    for s in socks:
        s.close()
    # Bytes counted as spliced: only when this sonic's `stats splice` exists
    # (it comes with the splice BPF family). Without it this test checks the
    # bytes above and nothing more; it does not pretend to check splicing.
    after = splice_stats()
    if before is not None and after is not None:
        moved = after.get("bytes", 0) - before.get("bytes", 0)
        assert moved >= 2 * total, "splice counted %d bytes for %d each way" % (moved, total)
