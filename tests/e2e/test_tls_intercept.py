"""TLS interception end to end: curl and openssl s_client through sonic to a
local nginx origin over TLS, its certificate issued by a test CA made here
and given to sonic as --upstream-ca.

- forward mode: CONNECT, then the tunnel's ClientHello is intercepted with a
  leaf from sonic's CA (made by `sonic ca init` in the test's state dir);
- reverse listeners with tls = "intercept";
- passthrough by SNI glob: the client sees the origin's own certificate;
- an origin that does not verify: 502 that says why, logged with its cause;
- resumption (openssl -sess_out/-sess_in), h2 offered -> http/1.1,
  TLS 1.1 refused, garbage where TLS was expected.
"""
import os
import re
import socket
import subprocess
import textwrap
import time
import urllib.request

import pytest

import proxyrun
import sonictest


def run(cmd, **kw):
    kw.setdefault("timeout", 30)
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


class Pki:
    """A test CA and an origin certificate for localhost (DNS), alt.test and
    127.0.0.1, and sonic's own CA in a fresh state directory."""

    def __init__(self, d):
        self.dir = str(d)
        self.state = os.path.join(self.dir, "state")
        p = lambda n: os.path.join(self.dir, n)  # noqa: E731
        self.ca, self.ca_key = p("origin-ca.pem"), p("origin-ca.key")
        self.cert, self.key = p("origin.pem"), p("origin.key")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        r = run(["openssl", "req", "-x509"] + ec + ["-keyout", self.ca_key, "-out", self.ca, "-days", "2",
                                                      "-subj", "/CN=sonic test origin CA"])
        assert r.returncode == 0, r.stderr
        r = run(["openssl", "req"] + ec + ["-keyout", self.key, "-out", p("origin.csr"), "-subj", "/CN=localhost"])
        assert r.returncode == 0, r.stderr
        with open(p("ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,DNS:alt.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        r = run(["openssl", "x509", "-req", "-in", p("origin.csr"), "-CA", self.ca, "-CAkey", self.ca_key,
                 "-CAcreateserial", "-out", self.cert, "-days", "2", "-extfile", p("ext")])
        assert r.returncode == 0, r.stderr
        r = run([sonictest.SONIC, "--state-dir", self.state, "ca", "init"])
        assert r.returncode == 0, r.stdout + r.stderr
        self.sonic_ca = os.path.join(self.dir, "sonic-ca.pem")
        r = run([sonictest.SONIC, "--state-dir", self.state, "ca", "export", "--out", self.sonic_ca])
        if r.returncode != 0 or not os.path.exists(self.sonic_ca):
            with open(os.path.join(self.state, "ca", "ca.pem")) as f:
                pem = f.read()
            cert = pem[pem.index("-----BEGIN CERTIFICATE-----"):]
            with open(self.sonic_ca, "w") as f:
                f.write(cert)


class TlsOrigin:
    """nginx over TLS on a free loopback port (PORT inside a namespace, run
    through PREFIX): it answers every request with the name it was asked for
    (SNI) and the path."""

    def __init__(self, workdir, pki, port=None, prefix=()):
        self.dir = os.path.join(str(workdir), "nginx-tls")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or proxyrun.free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(textwrap.dedent("""\
                daemon off;
                {user}
                worker_processes 1;
                pid {d}/nginx.pid;
                error_log {d}/error.log;
                events {{ worker_connections 1024; }}
                http {{
                    access_log off;
                    client_body_temp_path {d};
                    proxy_temp_path {d};
                    fastcgi_temp_path {d};
                    uwsgi_temp_path {d};
                    scgi_temp_path {d};
                    server {{
                        listen 127.0.0.1:{p} ssl;
                        ssl_certificate {c};
                        ssl_certificate_key {k};
                        ssl_protocols TLSv1.2 TLSv1.3;
                        location / {{ return 200 "origin: sni=$ssl_server_name path=$request_uri\\n"; }}
                    }}
                }}
                """).format(d=self.dir, p=self.port, c=pki.cert, k=pki.key,
                            user="user root root;" if os.geteuid() == 0 else ""))
        self.proc = subprocess.Popen(list(prefix) + ["nginx", "-c", conf, "-e", os.path.join(self.dir, "error.log")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not prefix:
            proxyrun.wait_accepting(self.port, self.proc, 10, "nginx")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path)


@pytest.fixture
def tls_origin(tmp_path, pki):
    o = TlsOrigin(tmp_path, pki)
    yield o
    o.stop()


def start(sonic_run, pki, tmp_path, body, extra=()):
    """sonic with the config BODY (its listener on a free port, the admin
    listener on another) and the test's state directory."""
    port, admin = proxyrun.free_port(), proxyrun.free_port()
    path = os.path.join(str(tmp_path), "sonic-%d.toml" % port)
    with open(path, "w") as f:
        f.write(body.format(port=port) + "\n[admin]\nlisten = \"127.0.0.1:%d\"\n" % admin)
    p = sonic_run.start(["--config", path, "--workers", 1] + list(extra), port, [admin],
                        global_args=["--state-dir", pki.state])
    p.admin = admin
    return p


FORWARD = """
[[listener]]
address = "127.0.0.1:{port}"
mode = "forward"
"""

REVERSE = """
[[listener]]
address = "127.0.0.1:{port}"
mode = "reverse"
tls = "intercept"

[[upstream]]
name = "app"
servers = ["%s"]

[[route]]
upstream = "app"
"""


def metrics(proxy):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % proxy.admin, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = int(float(v))
    return out


def curl_via(proxy, pki, url, *extra):
    return run(["curl", "-sS", "--max-time", "10", "-x", "http://127.0.0.1:%d" % proxy.port,
                "--cacert", pki.sonic_ca, "-w", "\n%{http_code} %{http_version} %{ssl_verify_result}"] +
               list(extra) + [url])


def served_cert(args, stdin=""):
    """openssl s_client ARGS: the served chain's text and the session text."""
    # -ign_eof: after the request, wait for the answer and the server's close.
    r = run(["openssl", "s_client", "-showcerts"] + (["-ign_eof"] if stdin else []) + args, input=stdin)
    return r.stdout + r.stderr


def test_forward_connect_is_intercepted_with_sonics_leaf(sonic_run, pki, tls_origin, tmp_path):
    p = start(sonic_run, pki, tmp_path, FORWARD, ["--tls", "intercept", "--upstream-ca", pki.ca])
    url = "https://localhost:%d/through/sonic" % tls_origin.port
    r = curl_via(p, pki, url)
    assert r.returncode == 0, r.stderr
    body, status = r.stdout.rsplit("\n", 1)
    assert body.strip() == "origin: sni=localhost path=/through/sonic"
    assert status.split()[0] == "200"
    assert status.split()[2] == "0"  # curl verified sonic's leaf against sonic's CA
    # The chain the client sees is sonic's: its leaf for localhost.
    out = served_cert(["-proxy", "127.0.0.1:%d" % p.port, "-connect", "localhost:%d" % tls_origin.port,
                       "-servername", "localhost"])
    issuers = re.findall(r"i:(.*)", out)
    assert issuers and "sonic" in issuers[0], out
    assert "sonic test origin CA" not in issuers[0]
    # The leaf carries the origin's own names besides the one asked for.
    pem = out[out.index("-----BEGIN CERTIFICATE-----"):out.index("-----END CERTIFICATE-----") + 25]
    text = run(["openssl", "x509", "-noout", "-ext", "subjectAltName"], input=pem).stdout
    assert "DNS:localhost" in text and "DNS:alt.test" in text and "IP Address:127.0.0.1" in text, text
    m = metrics(p)
    assert m['sonic_tls_connections_total{action="intercepted"}'] >= 2
    assert m['sonic_tls_upstream_handshakes_total{outcome="failed"}'] == 0


def test_keep_alive_requests_inside_one_intercepted_tunnel(sonic_run, pki, tls_origin, tmp_path):
    p = start(sonic_run, pki, tmp_path, FORWARD, ["--tls", "intercept", "--upstream-ca", pki.ca])
    base = "https://localhost:%d" % tls_origin.port
    r = run(["curl", "-sS", "--max-time", "10", "-x", "http://127.0.0.1:%d" % p.port, "--cacert", pki.sonic_ca,
             base + "/one", base + "/two", base + "/three"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["origin: sni=localhost path=/%s" % n for n in ("one", "two", "three")]
    m = metrics(p)
    assert m['sonic_tls_connections_total{action="intercepted"}'] == 1
    assert m['sonic_http_requests_total{code="2xx"}'] == 4  # the CONNECT and three requests
    assert m['sonic_tls_upstream_handshakes_total{outcome="full"}'] == 1
    # A second client connection: sonic's new connection to the origin
    # resumes the session of the first.
    r = run(["curl", "-sS", "--max-time", "10", "-x", "http://127.0.0.1:%d" % p.port, "--cacert", pki.sonic_ca,
             base + "/again"])
    assert r.stdout == "origin: sni=localhost path=/again\n", r.stderr
    m = metrics(p)
    assert m['sonic_tls_upstream_handshakes_total{outcome="resumed"}'] == 1, m
    assert m['sonic_tls_upstream_handshakes_total{outcome="full"}'] == 1


def test_untrusted_origin_gets_502_with_the_reason(sonic_run, pki, tls_origin, tmp_path):
    # No --upstream-ca: the origin's test CA is unknown to sonic.
    p = start(sonic_run, pki, tmp_path, FORWARD, ["--tls", "intercept"])
    r = curl_via(p, pki, "https://localhost:%d/" % tls_origin.port)
    assert r.returncode == 0, r.stderr
    body, status = r.stdout.rsplit("\n", 1)
    assert status.split()[0] == "502"
    assert "TLS with the origin failed" in body
    assert "not trusted" in body or "issuer" in body, body
    log = p.stderr()
    assert "upstream_tls in tls handshake with localhost" in log, log
    m = metrics(p)
    assert m['sonic_local_errors_total{cause="upstream_tls"}'] == 1
    assert m['sonic_tls_upstream_handshakes_total{outcome="failed"}'] == 1


def test_passthrough_by_sni_shows_the_origins_own_certificate(sonic_run, pki, tls_origin, tmp_path):
    p = start(sonic_run, pki, tmp_path, FORWARD,
              ["--tls", "intercept", "--upstream-ca", pki.ca, "--passthrough-sni", "local*"])
    out = served_cert(["-proxy", "127.0.0.1:%d" % p.port, "-connect", "localhost:%d" % tls_origin.port,
                       "-servername", "localhost", "-CAfile", pki.ca],
                      stdin="GET /pass HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    issuers = re.findall(r"i:(.*)", out)
    assert issuers and "sonic test origin CA" in issuers[0], out
    assert "origin: sni=localhost path=/pass" in out
    m = metrics(p)
    assert m['sonic_tls_connections_total{action="passthrough"}'] == 1
    assert m['sonic_tls_connections_total{action="intercepted"}'] == 0
    moved = sum(v for k, v in m.items() if k.startswith("sonic_tunnel_bytes_total"))
    assert moved > 1000  # the handshake and the response went through, spliced or copied


def test_reverse_listener_terminates_tls(sonic_run, pki, tmp_path):
    o = proxyrun.Nginx(str(tmp_path))
    try:
        p = start(sonic_run, pki, tmp_path, REVERSE % o.address)
        r = run(["curl", "-sS", "--max-time", "10", "--cacert", pki.sonic_ca, "--resolve",
                 "app.test:%d:127.0.0.1" % p.port, "-w", "\n%{http_code} %{http_version}", "--http2",
                 "https://app.test:%d/" % p.port])
        assert r.returncode == 0, r.stderr
        body, status = r.stdout.rsplit("\n", 1)
        assert body.strip() == "hello from nginx"
        # h2 offered with http/1.1: http/1.1 is what sonic takes.
        assert status == "200 1.1"
        # Only h2 offered: no ALPN agreed, and the handshake still completes.
        out = served_cert(["-connect", "127.0.0.1:%d" % p.port, "-servername", "app.test", "-alpn", "h2"],
                          stdin="GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        assert "No ALPN negotiated" in out, out
        assert "hello from nginx" in out
        # OpenSSL's X25519 key share is taken: one ServerHello, no HelloRetryRequest.
        out = served_cert(["-connect", "127.0.0.1:%d" % p.port, "-servername", "app.test", "-msg"])
        assert out.count("ServerHello") == 1 and "X25519" in out, out
    finally:
        o.stop()


def test_a_client_that_rejects_sonics_ca_is_logged_once(sonic_run, pki, tmp_path):
    o = proxyrun.Nginx(str(tmp_path))
    try:
        p = start(sonic_run, pki, tmp_path, REVERSE % o.address)
        for _ in range(3):
            # No --cacert: curl does not know sonic's CA and says so (unknown_ca).
            r = run(["curl", "-sS", "--max-time", "10", "--resolve", "app.test:%d:127.0.0.1" % p.port,
                     "https://app.test:%d/" % p.port])
            assert r.returncode != 0
        time.sleep(0.2)
        log = p.stderr()
        assert log.count("rejected sonic's certificate for 'app.test'") == 1, log
        assert "sonic ca trust" in log
        assert metrics(p)['sonic_tls_failures_total{reason="handshake"}'] == 3
    finally:
        o.stop()


def test_slow_and_oversized_hellos_are_closed_and_counted(sonic_run, pki, tmp_path):
    o = proxyrun.Nginx(str(tmp_path))
    try:
        p = start(sonic_run, pki, tmp_path, REVERSE % o.address + "\n[timeouts]\nclient_header = \"500ms\"\n")
        # The start of a hello, and nothing more: closed after client_header.
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert 0.3 < time.monotonic() - t0 < 3
        s.close()
        # A hello that says it is 64 KiB: closed at once.
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        s.sendall(b"\x16\x03\x01\x40\x00\x01\x01\x00\x00" + b"\x00" * 100)
        assert s.recv(100) == b""
        s.close()
        m = metrics(p)
        assert m['sonic_tls_failures_total{reason="slow_hello"}'] == 1
        assert m['sonic_tls_failures_total{reason="bad_hello"}'] == 1
    finally:
        o.stop()


def test_connect_tunnel_without_tls_passes_through(sonic_run, pki, echo_target, tmp_path):
    p = start(sonic_run, pki, tmp_path, FORWARD, ["--tls", "intercept"])
    s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    s.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (echo_target, echo_target))
    assert s.recv(100).startswith(b"HTTP/1.1 200")
    s.sendall(b"SSH-2.0-not-tls\r\n")
    got = b""
    while len(got) < 17:
        got += s.recv(100)
    assert got == b"SSH-2.0-not-tls\r\n"
    s.close()
    m = metrics(p)
    assert m['sonic_tls_connections_total{action="intercepted"}'] == 0
    assert m['sonic_tunnels_total{kind="connect"}'] == 1


def test_clients_resume_with_session_tickets(sonic_run, pki, tmp_path):
    o = proxyrun.Nginx(str(tmp_path))
    try:
        p = start(sonic_run, pki, tmp_path, REVERSE % o.address)
        sess = os.path.join(str(tmp_path), "sess")
        req = "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
        base = ["-connect", "127.0.0.1:%d" % p.port, "-servername", "app.test", "-CAfile", pki.sonic_ca]
        first = served_cert(base + ["-sess_out", sess], stdin=req)
        assert "hello from nginx" in first
        assert "Verify return code: 0" in first, first
        again = served_cert(base + ["-sess_in", sess], stdin=req)
        assert "Reused" in again, again
        assert "hello from nginx" in again
        assert metrics(p)["sonic_tls_resumed_total"] == 1
    finally:
        o.stop()


def test_old_versions_and_garbage_are_refused(sonic_run, pki, tmp_path):
    o = proxyrun.Nginx(str(tmp_path))
    try:
        p = start(sonic_run, pki, tmp_path, REVERSE % o.address)
        for flag in ("-tls1", "-tls1_1"):
            r = run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % p.port, "-servername", "app.test", flag,
                     "-cipher", "DEFAULT@SECLEVEL=0"], input="")
            assert "protocol version" in (r.stdout + r.stderr), r.stdout + r.stderr
            assert "Cipher is (NONE)" in r.stdout or "New, (NONE)" in r.stdout
        # Plain HTTP at a TLS listener: closed, the worker goes on.
        s = __import__("socket").create_connection(("127.0.0.1", p.port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100) == b""
        s.close()
        m = metrics(p)
        assert m['sonic_tls_failures_total{reason="old_version"}'] == 2
        assert m['sonic_tls_failures_total{reason="bad_hello"}'] == 1
        r = run(["curl", "-sS", "--max-time", "10", "--cacert", pki.sonic_ca, "--resolve",
                 "app.test:%d:127.0.0.1" % p.port, "https://app.test:%d/" % p.port])
        assert r.stdout == "hello from nginx\n", r.stderr
    finally:
        o.stop()


def test_intercept_without_a_ca_says_to_make_one(tmp_path):
    port = proxyrun.free_port()
    r = run([sonictest.SONIC, "--state-dir", str(tmp_path / "empty"), "run", "--mode", "forward", "--listen",
             "127.0.0.1:%d" % port, "--tls", "intercept"])
    assert r.returncode == 3, r.stdout + r.stderr
    assert "sonic ca init" in r.stderr


# ---- transparent mode, in a network namespace of the test's own --------------

@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.skip("transparent interception needs root (a network namespace and an iptables REDIRECT)")
    name = sonictest.unique("tls")[-20:]
    r = run(["ip", "netns", "add", name])
    if r.returncode != 0:
        pytest.skip("cannot make a network namespace: " + r.stderr)
    try:
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        yield name
    finally:
        run(["ip", "netns", "del", name])


def wait_in(ns, port, proc, what):
    """Waits until 127.0.0.1:PORT in NS accepts (bounded)."""
    for _ in range(100):
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %d" % (what, proc.returncode))
        r = run(["ip", "netns", "exec", ns, "python3", "-c",
                 "import socket; socket.create_connection(('127.0.0.1', %d), timeout=1).close()" % port])
        if r.returncode == 0:
            return
        __import__("time").sleep(0.1)
    raise RuntimeError("%s not accepting on %d in %s" % (what, port, ns))


def test_transparent_redirected_tls_is_intercepted_or_passed(netns, pki, tmp_path):
    """An iptables REDIRECT sends the namespace's connections to 127.0.0.1:4443
    to sonic's transparent listener; sonic's own connections carry its bypass
    mark and go through. localhost is intercepted; alt.test passes through."""
    ns = ["ip", "netns", "exec", netns]
    origin = TlsOrigin(tmp_path, pki, port=4443, prefix=ns)
    sonic = None
    try:
        wait_in(netns, 4443, origin.proc, "nginx")
        r = run(ns + ["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "127.0.0.1", "--dport", "4443",
                      "-m", "mark", "!", "--mark", "0x5301", "-j", "REDIRECT", "--to-ports", "15001"])
        if r.returncode != 0:
            pytest.skip("iptables REDIRECT is not available: " + r.stderr)
        conf = os.path.join(str(tmp_path), "transparent.toml")
        with open(conf, "w") as f:
            f.write(textwrap.dedent("""\
                [[listener]]
                address = "127.0.0.1:15001"
                mode = "transparent"
                tproxy = false

                [tls]
                mode = "intercept"
                passthrough_sni = ["alt.test"]
                upstream_ca = "{ca}"

                [access_log]
                path = "{log}"

                [admin]
                listen = "127.0.0.1:9901"
                """).format(ca=pki.ca, log=os.path.join(str(tmp_path), "access.log")))
        err = open(os.path.join(str(tmp_path), "transparent.stderr"), "wb")
        sonic = subprocess.Popen(ns + [sonictest.SONIC, "--state-dir", pki.state, "run", "--config", conf,
                                       "--workers", "1"], stdout=subprocess.DEVNULL, stderr=err)
        wait_in(netns, 15001, sonic, "sonic")
        curl = ns + ["curl", "-sS", "--max-time", "10"]
        r = run(curl + ["--cacert", pki.sonic_ca, "https://localhost:4443/seen"])
        assert r.returncode == 0, r.stderr
        assert r.stdout == "origin: sni=localhost path=/seen\n"
        # Passed through: only the origin's own CA verifies it.
        r = run(curl + ["--cacert", pki.ca, "--resolve", "alt.test:4443:127.0.0.1", "https://alt.test:4443/own"])
        assert r.returncode == 0, r.stderr
        assert r.stdout == "origin: sni=alt.test path=/own\n"
        m = run(curl + ["http://127.0.0.1:9901/metrics"]).stdout
        assert 'sonic_tls_connections_total{action="intercepted"} 1' in m
        assert 'sonic_tls_connections_total{action="passthrough"} 1' in m
        sonic.terminate()
        assert sonic.wait(15) == 0
        with open(os.path.join(str(tmp_path), "access.log")) as f:
            lines = [__import__("json").loads(x) for x in f if x.strip()]
        seen = [x for x in lines if x.get("path") == "/seen"]
        assert seen and seen[0]["tls"] == "intercepted" and seen[0]["sni"] == "localhost", lines
        assert seen[0]["mode"] == "transparent"
        assert seen[0]["tls_version"] in ("TLS1.2", "TLS1.3") and seen[0]["cipher"], seen[0]
        assert any(x.get("tls") == "passthrough" and x.get("sni") == "alt.test" for x in lines), lines
    finally:
        if sonic and sonic.poll() is None:
            sonic.kill()
            sonic.wait(5)
        origin.stop()


PROBE = r"""
import socket, ssl, sys, time
port, ca, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="probe.stall.test")
req = b"GET / HTTP/1.1\r\nHost: probe.stall.test\r\n\r\n"
def ask():
    t0 = time.monotonic()
    s.sendall(req)
    got = b""
    while not got.endswith(b"hello from nginx\n"):
        chunk = s.recv(4096)
        assert chunk
        got += chunk
    return time.monotonic() - t0
ask()
print("ready", flush=True)
sys.stdin.readline()
worst, end = 0.0, time.monotonic() + seconds
while time.monotonic() < end:
    worst = max(worst, ask())
print("%.6f" % worst, flush=True)
"""


@pytest.mark.xfail(strict=False, reason=(
    "the mints run off the loop, but when they land the 200 handshakes resume in one burst: "
    "~50-100 ms of handshake CPU queued ahead of the probe on one worker (notes/issue-14.md)"))
def test_minting_for_new_names_does_not_stall_open_connections(sonic_run, pki, tmp_path):
    """200 handshakes at once, each for a name never seen, while a kept-alive
    HTTPS connection (another process) keeps asking: minting runs off the
    event loop, so its requests wait no more than 50 ms longer than during
    the same storm for names already in memory."""
    import ssl
    import threading
    load = os.getloadavg()[0]
    if load > os.cpu_count() and not os.environ.get("SONIC_FORCE_LATENCY"):
        pytest.skip("SKIPPED LOUDLY: load average %.1f on %d CPUs: a 50 ms latency bound means nothing here"
                    % (load, os.cpu_count()))
    o = proxyrun.Nginx(str(tmp_path))
    try:
        p = start(sonic_run, pki, tmp_path, REVERSE % o.address)
        storm_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        storm_ctx.check_hostname = False
        storm_ctx.verify_mode = ssl.CERT_NONE

        def storm(names):
            """200 handshakes at once for NAMES; the probe's worst wait meanwhile."""
            probe = subprocess.Popen(["python3", "-c", PROBE, str(p.port), pki.sonic_ca, "2"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert probe.stdout.readline().strip() == "ready"
            done = []
            go = threading.Event()

            def handshake(name):
                go.wait()
                try:
                    with socket.create_connection(("127.0.0.1", p.port), timeout=30) as s:
                        with storm_ctx.wrap_socket(s, server_hostname=name):
                            done.append(name)
                except OSError:
                    pass

            threads = [threading.Thread(target=handshake, args=(n,)) for n in names]
            for t in threads:
                t.start()
            probe.stdin.write("go\n")
            probe.stdin.flush()
            time.sleep(0.05)
            go.set()
            for t in threads:
                t.join(30)
            worst = float(probe.stdout.readline())
            probe.wait(10)
            assert len(done) == len(names)
            return worst

        names = ["n%d.stall.test" % i for i in range(200)]
        # The same storm twice: first every name is minted, then every one is
        # in memory. What minting adds is the difference; the handshakes
        # themselves cost both times.
        minting = storm(names)
        cached = storm(names)
        print("probe worst: minting %.1f ms, cached %.1f ms" % (minting * 1000, cached * 1000))
        m = metrics(p)
        assert m['sonic_tls_certificates_total{lookup="miss"}'] >= 200
        assert m['sonic_tls_certificates_total{lookup="hit"}'] >= 200
        assert minting < cached + 0.050, "minting held a request on an open connection %.1f ms (cached: %.1f ms)" % (
            minting * 1000, cached * 1000)
    finally:
        o.stop()
