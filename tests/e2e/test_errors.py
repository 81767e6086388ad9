"""Failures around the proxy: upstream refused (502) and too slow (504),
slow clients timed out without slowing others, a client gone mid-body,
bad configs (exit 1 with file:line), a port in use (exit 3), and no
descriptor leaked over a batch of good and bad requests."""
import json
import os
import re
import socket
import subprocess
import time

import pytest

import proxyrun
import sonicconf
import sonictest
from sonictest import wait_for
from conftest import connect
from origin import read_response


def status_of(port, raw, timeout=15):
    s = connect(port, timeout=timeout)
    s.sendall(raw)
    status, _, body, _ = read_response(s)
    s.close()
    return status, body


def test_upstream_refused_is_502(sonic_run):
    dead = proxyrun.free_port()
    p = sonic_run.reverse("127.0.0.1:%d" % dead)
    started = time.time()
    status, _ = status_of(p.port, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
    assert status == 502
    assert time.time() - started < 5, "a refused upstream should fail fast"


def local_errors(admin_port):
    """sonic_local_errors_total per cause, from the admin listener's /metrics."""
    return proxyrun.sum_by(proxyrun.metrics(admin_port), "sonic_local_errors_total", "cause")


def test_a_502_from_a_dead_upstream_is_logged_once_and_counted(sonic_run):
    dead = "127.0.0.1:%d" % proxyrun.free_port()
    cfg = sonicconf.Config().reverse(dead).admin()
    p = sonic_run.config(cfg)
    before = local_errors(cfg.admin_port)
    assert "connect_error" in before, "no connect_error cause on /metrics: %s" % before

    status, _ = status_of(p.port, b"GET /dead-upstream HTTP/1.1\r\nHost: h\r\n\r\n")
    assert status == 502

    def lines():
        found = [line for line in p.stderr().splitlines() if dead in line]
        return found or None
    logged = wait_for(lines)
    assert logged, "no stderr line names %s: %r" % (dead, p.stderr()[-2000:])
    # Give a second line (a duplicate from another layer) the time to show.
    time.sleep(0.3)
    logged = lines()
    assert len(logged) == 1, "one 502, one line: %r" % logged
    line = logged[0]
    assert "502" in line and "/dead-upstream" in line, line
    assert "ECONNREFUSED" in line, "the errno is named: %r" % line
    assert " in connect " in line, "the phase is named: %r" % line

    after = local_errors(cfg.admin_port)
    grew = {c: after[c] - before.get(c, 0) for c in after if after[c] != before.get(c, 0)}
    assert grew == {"connect_error": 1}, grew


def test_upstream_timeout_is_504(sonic_run, origin):
    cfg = sonicconf.Config().reverse(origin.address).timeouts(upstream_response=1)
    p = sonic_run.config(cfg)
    started = time.time()
    status, _ = status_of(p.port, b"GET /slow?delay=4 HTTP/1.1\r\nHost: h\r\n\r\n")
    took = time.time() - started
    assert status == 504
    assert 0.8 < took < 3.5, "504 after %.1fs with a 1 s upstream timeout" % took
    # The next request is served normally (and not on the timed-out connection).
    status, body = status_of(p.port, b"GET /echo HTTP/1.1\r\nHost: h\r\n\r\n")
    assert status == 200
    slow_conn = origin.requests_to("/slow")[0]["conn"]
    assert json.loads(body)["conn"] != slow_conn


def test_slow_client_does_not_slow_others(sonic_run, origin):
    cfg = sonicconf.Config().reverse(origin.address).timeouts(client_header=2)
    p = sonic_run.config(cfg)
    slow = []
    for _ in range(20):
        s = connect(p.port)
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: h\r\n")  # never finishes its header block
        slow.append(s)
    worst = 0.0
    for i in range(30):
        started = time.time()
        status, _ = status_of(p.port, b"GET /echo?fast=%d HTTP/1.1\r\nHost: h\r\n\r\n" % i)
        worst = max(worst, time.time() - started)
        assert status == 200
    assert worst < 0.5, "a request took %.2fs while slow clients were connected" % worst
    # Every slow client is timed out (408 or a plain close) within the header timeout plus slack.
    deadline = time.time() + 6
    for s in slow:
        s.settimeout(max(0.1, deadline - time.time()))
        data = b""
        try:
            while True:
                d = s.recv(4096)
                if not d:
                    break
                data += d
        except socket.timeout:
            pytest.fail("a client that never finished its header is still connected after 6 s")
        except ConnectionResetError:
            pass
        assert data == b"" or data.startswith(b"HTTP/1.1 408"), data[:100]
        s.close()
    assert [r for r in origin.requests if r["target"] == "/echo"] == []


def test_client_gone_mid_body_aborts_upstream(reverse, origin):
    s = connect(reverse.port)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 1000000)
    deadline = time.time() + 5
    while not origin.requests_to("/echo") and time.time() < deadline:
        time.sleep(0.02)
    assert origin.requests_to("/echo"), "the request never reached the origin"
    s.close()
    deadline = time.time() + 5
    while not origin.events_of("aborted") and time.time() < deadline:
        time.sleep(0.05)
    aborted = origin.events_of("aborted")
    assert aborted, "the origin's request was not aborted after the client left"
    conn = aborted[0][1]
    assert ("closed", conn, None) in origin.events
    status, body = status_of(reverse.port, b"GET /echo?next HTTP/1.1\r\nHost: h\r\n\r\n")
    assert status == 200
    assert json.loads(body)["conn"] != conn


BAD_CONFIGS = {
    # name -> (text with a fault on line 3, the line sonic must name)
    "toml_syntax": ("workers = 1\n\naddress = = \"x\"\n", 3),
    "unknown_key": ("workers = 1\n[[listener]]\nno_such_option = true\n", 3),
    "wrong_type": ("workers = 1\n[[listener]]\naddress = 8080\n", 3),
    "unknown_upstream": ("[[listener]]\naddress = \"127.0.0.1:1\"\n[[route]]\nupstream = \"nowhere\"\n", 4),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config_exit_1_with_file_line(tmp_path, name):
    text, line = BAD_CONFIGS[name]
    path = tmp_path / ("%s.toml" % name)
    path.write_text(text)
    for extra in (["--check"], []):
        r = subprocess.run([sonictest.SONIC, "run", "--config", str(path)] + extra,
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 1, "%s %s: exit %d, stderr %s" % (name, extra, r.returncode, r.stderr)
        assert "%s:%d" % (path, line) in r.stderr, "%s: no file:line in %r" % (name, r.stderr)


def test_bad_listen_address_names_its_line(tmp_path, origin):
    cfg = sonicconf.Config().reverse(origin.address)
    text = cfg.text().replace("127.0.0.1:%d" % cfg.listen_port, "127.0.0.1:99999")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    line = text.splitlines().index([l for l in text.splitlines() if "99999" in l][0]) + 1
    r = subprocess.run([sonictest.SONIC, "run", "--config", str(path), "--check"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1, r
    assert "%s:%d" % (path, line) in r.stderr, r.stderr


def test_check_good_config_does_not_bind(tmp_path, origin):
    cfg = sonicconf.Config().reverse(origin.address)
    path = cfg.write(str(tmp_path))
    r = subprocess.run([sonictest.SONIC, "run", "--config", path, "--check"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", cfg.listen_port))


def test_missing_config_file_exit_3(tmp_path):
    r = subprocess.run([sonictest.SONIC, "run", "--config", str(tmp_path / "absent.toml")],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 3, r
    assert "absent.toml" in r.stderr


def test_port_in_use_exit_3(origin):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        r = subprocess.run([sonictest.SONIC, "run", "--mode", "reverse", "--listen", "127.0.0.1:%d" % port,
                            "--upstream", origin.address, "--workers", "1"],
                           capture_output=True, text=True, timeout=20)
    assert r.returncode == 3, r
    assert str(port) in r.stderr and re.search(r"in use", r.stderr, re.I), r.stderr


def test_usage_error_exit_1():
    r = subprocess.run([sonictest.SONIC, "run", "--mode", "sideways"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 1, r
    assert r.stderr.startswith("Error:"), r.stderr


def settle_fds(proxy, baseline, seconds=5):
    deadline = time.time() + seconds
    while time.time() < deadline:
        n = len(proxy.fds())
        if n <= baseline:
            return n
        time.sleep(0.1)
    return len(proxy.fds())


def test_no_descriptor_leak(reverse, origin):
    def one(raw):
        s = connect(reverse.port)
        s.sendall(raw)
        try:
            read_response(s)
        except Exception:
            pass
        s.close()

    one(b"GET /echo HTTP/1.1\r\nHost: h\r\n\r\n")
    time.sleep(0.3)
    baseline = len(reverse.fds())
    for i in range(100):
        one(b"GET /echo?%d HTTP/1.1\r\nHost: h\r\n\r\n" % i)
        one(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc")
        one(b"GET /echo HTTP/1.1\r\nHost: h\r\n" + b"X: " + b"a" * 40000 + b"\r\n\r\n")
        s = connect(reverse.port)
        s.sendall(b"GET /echo HTTP/1.1\r\nHo")
        s.close()
        if i % 10 == 0:
            s = connect(reverse.port)
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\npartial")
            time.sleep(0.05)
            s.close()
    one(b"GET /echo HTTP/1.1\r\nHost: h\r\n\r\n")
    after = settle_fds(reverse, baseline)
    assert after <= baseline, "descriptors: %d before, %d after 500 requests: %s" % (
        baseline, after, [os.readlink("/proc/%d/fd/%s" % (reverse.pid, fd)) for fd in reverse.fds()])
    assert len(origin.requests_to("/echo")) >= 102
