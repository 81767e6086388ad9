"""What an operator reads: the JSON access log, the admin listener's
/metrics (Prometheus text) and /healthz, and the no-argument default (a
forward proxy on 127.0.0.1:8080)."""
import json
import socket
import subprocess

import pytest

import proxyrun
import sonicconf
import sonictest
from conftest import connect
from origin import read_response
from sonictest import wait_for

LOG_FIELDS = ("time", "client", "method", "host", "path", "status", "bytes_sent", "upstream", "duration_ms")


def request(port, raw):
    s = connect(port)
    s.sendall(raw)
    status, _, body, _ = read_response(s)
    s.close()
    return status, body


def test_access_log_json_lines(sonic_run, origin, tmp_path):
    log = str(tmp_path / "access.log")
    cfg = sonicconf.Config().reverse(origin.address).access_log(log)
    p = sonic_run.config(cfg)
    assert request(p.port, b"GET /echo?q=1 HTTP/1.1\r\nHost: site.test\r\n\r\n")[0] == 200
    assert request(p.port, b"GET /bytes?n=12345 HTTP/1.1\r\nHost: site.test\r\n\r\n")[0] == 200
    assert request(p.port, b"GET /status?code=404 HTTP/1.1\r\nHost: site.test\r\n\r\n")[0] == 404

    def entries():
        try:
            with open(log) as f:
                e = proxyrun.json_lines(f.read())
        except FileNotFoundError:
            return None
        return e if len(e) >= 3 else None
    lines = wait_for(entries)
    assert lines, "no access log lines in %s" % log
    for e in lines:
        missing = [k for k in LOG_FIELDS if k not in e]
        assert not missing, "access log entry lacks %s: %s" % (missing, e)
    # "path" is the request target as sent, query included.
    by_path = {e["path"].split("?")[0]: e for e in lines}
    assert by_path["/echo"]["path"] == "/echo?q=1"
    assert by_path["/echo"]["method"] == "GET"
    assert by_path["/echo"]["host"] == "site.test"
    assert by_path["/echo"]["client"].startswith("127.0.0.1")
    assert by_path["/echo"]["upstream"] == origin.address
    assert by_path["/bytes"]["bytes_sent"] >= 12345
    assert by_path["/status"]["status"] == 404
    assert all(e["duration_ms"] >= 0 for e in lines)


def test_access_log_on_stdout(sonic_run, origin):
    p = sonic_run.config(sonicconf.Config().reverse(origin.address).access_log("-"))
    assert request(p.port, b"GET /echo?stdout HTTP/1.1\r\nHost: h\r\n\r\n")[0] == 200
    lines = wait_for(lambda: [e for e in proxyrun.json_lines(p.stdout()) if e.get("path") == "/echo?stdout"])
    assert lines, "no access log line on stdout: %r" % p.stdout()[-500:]
    assert lines[0]["status"] == 200


def test_admin_metrics_and_healthz(sonic_run, origin):
    cfg = sonicconf.Config().reverse(origin.address).admin()
    p = sonic_run.config(cfg)
    status, body = request(cfg.admin_port, b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
    assert status == 200
    before = proxyrun.metrics(cfg.admin_port)
    assert before, "empty /metrics"
    for i in range(25):
        assert request(p.port, b"GET /echo?%d HTTP/1.1\r\nHost: h\r\n\r\n" % i)[0] == 200
    after = proxyrun.metrics(cfg.admin_port)
    grew = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) >= 25}
    assert grew, "no metric counted 25 requests: %s" % after
    # The admin listener is not the proxy: /metrics on the proxy port goes to the origin.
    request(p.port, b"GET /metrics HTTP/1.1\r\nHost: h\r\n\r\n")
    assert origin.requests_to("/metrics")


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_no_arguments_is_forward_proxy_on_8080(tmp_path, origin):
    if not port_free(8080):
        pytest.skip("127.0.0.1:8080 is taken on this machine")
    p = proxyrun.Proxy([], 8080, str(tmp_path)).start()
    try:
        r = subprocess.run(["curl", "-sS", "--max-time", "10", "-x", "http://127.0.0.1:8080",
                            "http://%s/echo?default" % origin.address], capture_output=True, timeout=20)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["target"] == "/echo?default"
        assert p.alive()
    finally:
        assert p.stop() == 0, p.stderr()


def test_version_and_help_mention_run():
    r = subprocess.run([sonictest.SONIC, "run", "--help"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0
    for flag in ("--config", "--check", "--mode", "--listen", "--upstream", "--workers"):
        assert flag in r.stdout, flag
