"""Tunnels: CONNECT through forward mode to a socat echo target, absolute-form
requests in forward mode, an Upgrade echo through reverse mode, and an L4
route (protocol = "tcp") moving bytes. As root the splice family is loaded
into a bpffs directory of the test's own and the tunnels are checked to be
spliced by the kernel (early bytes, half-close, idle timeout, /metrics), and
upstream connections to carry the steering bypass mark."""
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest

import proxyrun
import sonicconf
import sonictest
from conftest import connect
from origin import read_response


def roundtrip(sock, data, rest=b"", expect=None):
    """Sends DATA from a thread while reading the echo (EXPECT bytes, by
    default as many as DATA); returns what came back."""
    expect = len(data) if expect is None else expect

    def send():
        view = memoryview(data)
        for off in range(0, len(view), 65536):
            sock.sendall(view[off:off + 65536])
    t = threading.Thread(target=send, daemon=True)
    t.start()
    got = bytearray(rest)
    while len(got) < expect:
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


def upgrade_echo(proxy, origin):
    s = connect(proxy.port, timeout=30)
    s.sendall(b"GET /upgrade HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
    status, headers, _, rest = read_response(s)
    assert status == 101
    assert headers.get("upgrade") == "echo"
    data = os.urandom(2 << 20)
    assert roundtrip(s, data, rest) == data
    s.close()
    assert origin.events_of("upgraded")


def test_upgrade_echo(reverse, origin):
    upgrade_echo(reverse, origin)


def test_upgrade_echo_spliced(sonic_run, origin, splice_bpffs):
    if splice_bpffs is None:
        pytest.skip("needs root to load the splice family")
    before = splice_stats(splice_bpffs)
    upgrade_echo(sonic_run.reverse(origin.address, global_args=["--bpffs", splice_bpffs]), origin)
    assert splice_stats(splice_bpffs)["redirect_bytes"] - before["redirect_bytes"] >= 2 << 20


def splice_stats(bpffs):
    """`sonic -j stats splice` of BPFFS."""
    r = subprocess.run([sonictest.SONIC, "-j", "--bpffs", bpffs, "stats", "splice"], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["splice"]


def tunnel_bytes(admin_port):
    """sonic_tunnel_bytes_total of /metrics, summed by path, and sonic_tunnels_active."""
    values = proxyrun.metrics(admin_port, timeout=20)
    paths = {"spliced": 0, "copied": 0}
    paths.update(proxyrun.sum_by(values, "sonic_tunnel_bytes_total", "path"))
    return paths, values.get("sonic_tunnels_active")


def own_bpffs():
    return "/sys/fs/bpf/sonic-e2e-%d-%s" % (os.getpid(), uuid.uuid4().hex[:8])


def prog(root, *args):
    """`sonic prog ARGS...` on the bpffs directory ROOT."""
    r = subprocess.run([sonictest.SONIC, "-q", "--bpffs", root, "prog"] + list(args), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr


@pytest.fixture
def splice_bpffs():
    """A bpffs directory of this test's own with the splice family loaded
    (`sonic prog load splice`), unloaded afterwards, even when the test or
    the load fails; None without root, where tunnels are copied."""
    if os.geteuid() != 0:
        yield None
        return
    root = own_bpffs()
    try:
        prog(root, "load", "splice")
        yield root
        prog(root, "unload")
        assert not os.path.exists(root)
    finally:
        sonictest.remove_bpffs_root(root)


@pytest.fixture
def empty_bpffs():
    """A bpffs directory of this test's own where nothing is loaded yet;
    what the test loads there is unloaded afterwards. Needs root."""
    if os.geteuid() != 0:
        pytest.skip("needs root to load the splice family")
    root = own_bpffs()
    try:
        yield root
        prog(root, "unload")
        assert not os.path.exists(root)
    finally:
        sonictest.remove_bpffs_root(root)


def l4_traffic(port):
    """Echoes 8 MiB through each of 4 tunnels, then 1 MiB through one whose
    client half-closes first and still gets every byte back. Returns the
    bytes sent each way."""
    socks = [connect(port, timeout=30) for _ in range(4)]
    total = 0
    for s in socks:
        data = os.urandom(8 << 20)
        assert roundtrip(s, data) == data
        total += len(data)
    for s in socks:
        s.close()
    s = connect(port, timeout=30)
    data = os.urandom(1 << 20)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = bytearray()
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        got += d
    s.close()
    assert bytes(got) == data, "half-closed tunnel: %d of %d bytes came back" % (len(got), len(data))
    return total + len(data)


def finished_tunnel_bytes(admin_port):
    """Waits until no tunnel is open, then returns tunnel_bytes by path."""
    deadline = time.monotonic() + 20
    while True:
        paths, active = tunnel_bytes(admin_port)
        if active == 0 or time.monotonic() > deadline:
            assert active == 0, "tunnels still open"
            return paths
        time.sleep(0.05)


def test_l4_route_moves_bytes(sonic_run, echo_target, splice_bpffs):
    cfg = sonicconf.Config().tcp_route("127.0.0.1:%d" % echo_target).admin()
    p = sonic_run.config(cfg, ["--bpffs", splice_bpffs] if splice_bpffs else [])
    before = splice_stats(splice_bpffs) if splice_bpffs else None
    total = l4_traffic(p.port)
    paths = finished_tunnel_bytes(cfg.admin_port)
    assert paths["spliced"] + paths["copied"] == 2 * total, paths
    if splice_bpffs is None:
        # Without root nothing can be spliced; the bytes above are the test.
        assert paths["spliced"] == 0, paths
        return
    # The family is loaded for this sonic: the kernel forwards the tunnels.
    # A direction whose reader falls behind is copied for a while (flow
    # control), so not every byte need be spliced, but most are.
    assert paths["spliced"] >= total, paths
    after = splice_stats(splice_bpffs)
    assert after["redirect_bytes"] - before["redirect_bytes"] >= paths["spliced"], (before, after, paths)
    assert after["tunnels"] == 0, after


def test_l4_route_copies_with_splice_off(sonic_run, echo_target, splice_bpffs):
    if splice_bpffs is None:
        pytest.skip("needs root to load the splice family")
    cfg = sonicconf.Config().tcp_route("127.0.0.1:%d" % echo_target).admin().tunnels(splice=False)
    p = sonic_run.config(cfg, ["--bpffs", splice_bpffs])
    total = l4_traffic(p.port)
    paths = finished_tunnel_bytes(cfg.admin_port)
    assert paths == {"spliced": 0, "copied": 2 * total}, paths
    assert splice_stats(splice_bpffs)["redirect_bytes"] == 0


def test_reload_takes_up_a_family_loaded_after_start(sonic_run, echo_target, empty_bpffs):
    cfg = sonicconf.Config().tcp_route("127.0.0.1:%d" % echo_target).admin()
    p = sonic_run.config(cfg, ["--bpffs", empty_bpffs])
    assert "tunnels: copied in userspace" in p.stderr(), p.stderr()

    def one_tunnel():
        s = connect(p.port, timeout=30)
        data = os.urandom(4 << 20)
        assert roundtrip(s, data) == data
        s.close()
        return len(data)

    total = one_tunnel()
    assert finished_tunnel_bytes(cfg.admin_port) == {"spliced": 0, "copied": 2 * total}

    prog(empty_bpffs, "load")
    p.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "reload: tunnels: spliced by the kernel" not in p.stderr():
        assert time.monotonic() < deadline, "the reload did not take up the family: %s" % p.stderr()[-1000:]
        time.sleep(0.05)
    before = splice_stats(empty_bpffs)
    total += one_tunnel()
    paths = finished_tunnel_bytes(cfg.admin_port)
    assert paths["spliced"] + paths["copied"] == 2 * total, paths
    # As in test_l4_route_moves_bytes: most of the new tunnel's bytes, not
    # necessarily all, go through the kernel.
    assert paths["spliced"] >= total // 2, paths
    after = splice_stats(empty_bpffs)
    assert after["redirect_bytes"] - before["redirect_bytes"] >= paths["spliced"], (before, after, paths)


def test_connect_with_early_bytes_is_spliced(sonic_run, echo_target, splice_bpffs):
    if splice_bpffs is None:
        pytest.skip("needs root to load the splice family")
    p = sonic_run.forward(global_args=["--bpffs", splice_bpffs])
    before = splice_stats(splice_bpffs)
    s = connect(p.port, timeout=30)
    # The first tunnel bytes come with the request: sonic has read them and
    # must write them before the kernel forwards what follows.
    early = b"early bytes before the 200\n"
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % echo_target + early)
    try:
        status, _, _, rest = read_response(s, method="CONNECT")
        assert status == 200
        data = os.urandom(4 << 20)
        assert roundtrip(s, data, rest, len(early) + len(data)) == early + data
    finally:
        s.close()
    assert splice_stats(splice_bpffs)["redirect_bytes"] - before["redirect_bytes"] >= len(data)


def test_spliced_tunnel_idle_timeout(sonic_run, echo_target, splice_bpffs):
    if splice_bpffs is None:
        pytest.skip("needs root to load the splice family")
    cfg = sonicconf.Config().tcp_route("127.0.0.1:%d" % echo_target).timeouts(tunnel_idle=1)
    p = sonic_run.config(cfg, ["--bpffs", splice_bpffs])
    s = connect(p.port, timeout=10)
    # Bytes the kernel forwards keep the tunnel alive past tunnel_idle...
    start = time.monotonic()
    while time.monotonic() - start < 2.5:
        s.sendall(b"ping")
        assert s.recv(16) == b"ping"
        time.sleep(0.2)
    assert splice_stats(splice_bpffs)["tunnels"] == 1
    # ... and a tunnel with none is closed after it.
    quiet = time.monotonic()
    s.settimeout(10)
    assert s.recv(16) == b""
    assert 0.9 < time.monotonic() - quiet < 4
    s.close()


def test_upstream_connections_carry_the_steer_bypass_mark(sonic_run, echo_target):
    if os.geteuid() != 0:
        pytest.skip("SO_MARK needs CAP_NET_ADMIN")
    p = sonic_run.config(sonicconf.Config().tcp_route("127.0.0.1:%d" % echo_target))
    s = connect(p.port, timeout=10)
    s.sendall(b"x")
    assert s.recv(1) == b"x"
    r = subprocess.run(["ss", "-tnHe", "state", "established", "dst", "127.0.0.1:%d" % echo_target],
                       capture_output=True, text=True, timeout=10)
    s.close()
    assert r.returncode == 0, r.stderr
    assert "fwmark:0x5301" in r.stdout, r.stdout
