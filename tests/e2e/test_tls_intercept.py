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
import json
import os
import re
import socket
import subprocess
import textwrap
import time

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
        self.proc = proxyrun.start_nginx(self.dir, self.port, """\
            server {
                listen 127.0.0.1:%d ssl;
                ssl_certificate %s;
                ssl_certificate_key %s;
                ssl_protocols TLSv1.2 TLSv1.3;
                location / { return 200 "origin: sni=$ssl_server_name path=$request_uri\\n"; }
            }
            """ % (self.port, pki.cert, pki.key), prefix=prefix)

    def stop(self):
        proxyrun.stop_nginx(self.proc)


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
    m = proxyrun.metrics(p.admin)
    assert m['sonic_tls_connections_total{action="intercepted"}'] >= 2
    assert m['sonic_tls_upstream_handshakes_total{outcome="failed"}'] == 0


def test_keep_alive_requests_inside_one_intercepted_tunnel(sonic_run, pki, tls_origin, tmp_path):
    p = start(sonic_run, pki, tmp_path, FORWARD, ["--tls", "intercept", "--upstream-ca", pki.ca])
    base = "https://localhost:%d" % tls_origin.port
    r = run(["curl", "-sS", "--max-time", "10", "-x", "http://127.0.0.1:%d" % p.port, "--cacert", pki.sonic_ca,
             base + "/one", base + "/two", base + "/three"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["origin: sni=localhost path=/%s" % n for n in ("one", "two", "three")]
    m = proxyrun.metrics(p.admin)
    assert m['sonic_tls_connections_total{action="intercepted"}'] == 1
    assert m['sonic_http_requests_total{code="2xx"}'] == 4  # the CONNECT and three requests
    assert m['sonic_tls_upstream_handshakes_total{outcome="full"}'] == 1
    # A second client connection: sonic's new connection to the origin
    # resumes the session of the first.
    r = run(["curl", "-sS", "--max-time", "10", "-x", "http://127.0.0.1:%d" % p.port, "--cacert", pki.sonic_ca,
             base + "/again"])
    assert r.stdout == "origin: sni=localhost path=/again\n", r.stderr
    m = proxyrun.metrics(p.admin)
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
    m = proxyrun.metrics(p.admin)
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
    m = proxyrun.metrics(p.admin)
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


def test_forwarded_names_the_protocol_the_client_used(sonic_run, pki, origin, tmp_path):
    # RFC 7239 5.4: proto is how the request reached sonic, https where
    # sonic terminated the client's TLS, http on a plain listener.
    headers = '\n[headers]\nforwarded = true\n'
    tls = start(sonic_run, pki, tmp_path, REVERSE % origin.address + headers)
    plain = start(sonic_run, pki, tmp_path, REVERSE.replace('tls = "intercept"\n', "") % origin.address + headers)
    for p, scheme in ((tls, "https"), (plain, "http")):
        r = run(["curl", "-sS", "--max-time", "10", "--cacert", pki.sonic_ca, "--resolve",
                 "app.test:%d:127.0.0.1" % p.port, "%s://app.test:%d/echo" % (scheme, p.port)])
        assert r.returncode == 0, r.stderr
        sent = [v for n, v in json.loads(r.stdout)["headers"] if n.lower() == "forwarded"]
        assert sent == ["for=127.0.0.1;host=app.test:%d;proto=%s" % (p.port, scheme)], r.stdout


HTTPS_GROUPS = """
[[listener]]
address = "127.0.0.1:{port}"
mode = "reverse"
%s

[[upstream]]
name = "by_address"
servers = ["127.0.0.1:%d"]
tls = true

[[upstream]]
name = "by_name"
servers = ["127.0.0.1:%d"]
tls = true
tls_name = "alt.test"

[[route]]
path = "/named/"
upstream = "by_name"

[[route]]
upstream = "by_address"
%s
"""


def test_reverse_groups_reach_https_origins(sonic_run, pki, tls_origin, tmp_path):
    # HTTPS on both legs: the client's terminated with sonic's leaf, the
    # origin's verified against [tls] upstream_ca, for its address or for
    # tls_name (sent as SNI).
    trusted = '[tls]\nupstream_ca = "%s"' % pki.ca
    p = start(sonic_run, pki, tmp_path,
              HTTPS_GROUPS % ('tls = "intercept"', tls_origin.port, tls_origin.port, trusted))
    for path, sni in (("/plain", ""), ("/named/x", "alt.test")):
        r = run(["curl", "-sS", "--max-time", "10", "--cacert", pki.sonic_ca, "--resolve",
                 "app.test:%d:127.0.0.1" % p.port, "https://app.test:%d%s" % (p.port, path)])
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "origin: sni=%s path=%s" % (sni, path), r.stdout
    # The second request to a group takes the kept-alive connection.
    r = run(["curl", "-sS", "--max-time", "10", "--cacert", pki.sonic_ca, "--resolve",
             "app.test:%d:127.0.0.1" % p.port, "https://app.test:%d/again" % p.port])
    assert r.stdout.strip() == "origin: sni= path=/again", r.stdout
    m = proxyrun.metrics(p.admin)
    assert m['sonic_tls_upstream_handshakes_total{outcome="full"}'] == 2, m
    assert m['sonic_tls_upstream_handshakes_total{outcome="failed"}'] == 0


def test_an_https_group_without_trust_gets_502(sonic_run, pki, tls_origin, tmp_path):
    # A plain listener, no CA of sonic's needed; the origin's CA not given.
    p = start(sonic_run, pki, tmp_path, HTTPS_GROUPS % ("", tls_origin.port, tls_origin.port, ""))
    r = run(["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", "http://127.0.0.1:%d/named/" % p.port])
    body, status = r.stdout.rsplit("\n", 1)
    assert status == "502", r.stdout
    assert "TLS with the origin failed" in body, body
    log = p.stderr()
    assert "upstream_tls in tls handshake with alt.test at 127.0.0.1:%d" % tls_origin.port in log, log


def test_upstream_https_on_the_command_line(sonic_run, pki, tls_origin):
    # `--upstream https://HOST:PORT`: the group's one server over TLS, HOST
    # sent as SNI and verified, as tls = true in a file.
    origin = "https://localhost:%d" % tls_origin.port
    p = sonic_run.reverse(origin, extra=["--upstream-ca", pki.ca], global_args=["--state-dir", pki.state])
    r = run(["curl", "-sS", "--max-time", "10", "http://127.0.0.1:%d/cli" % p.port])
    assert r.returncode == 0 and r.stdout.strip() == "origin: sni=localhost path=/cli", (r.stdout, r.stderr)
    # Without the origin's CA it does not verify: 502, and the log says why.
    q = sonic_run.reverse(origin, global_args=["--state-dir", pki.state])
    r = run(["curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}", "http://127.0.0.1:%d/cli" % q.port])
    assert r.stdout.rsplit("\n", 1)[1] == "502", r.stdout
    assert "upstream_tls in tls handshake with localhost" in q.stderr(), q.stderr()


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
        assert proxyrun.metrics(p.admin)['sonic_tls_failures_total{reason="handshake"}'] == 3
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
        m = proxyrun.metrics(p.admin)
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
    m = proxyrun.metrics(p.admin)
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
        assert proxyrun.metrics(p.admin)["sonic_tls_resumed_total"] == 1
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
        m = proxyrun.metrics(p.admin)
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


def echo_upgraded(t, got):
    """On an upgraded TLS socket T (GOT: bytes read past the 101): 1 MiB in
    64 KiB pieces, each echoed before the next (one thread per TLS socket:
    OpenSSL's are not for two threads at once), then close_notify both ways."""
    data = os.urandom(1 << 20)
    back = bytearray(got)
    for off in range(0, len(data), 65536):
        t.sendall(data[off:off + 65536])
        while len(back) < off + 65536:
            d = t.recv(1 << 20)
            assert d, "the tunnel ended after %d bytes" % len(back)
            back += d
    assert bytes(back) == data
    # The client's close_notify reaches the origin as an end; the origin's
    # close comes back as sonic's close_notify.
    t.unwrap().close()


def upgrade_request(t):
    t.sendall(b"GET /upgrade HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
    import origin as origin_mod
    status, headers, _, got = origin_mod.read_response(t)
    assert status == 101, (status, headers)
    assert headers.get("upgrade") == "echo"
    return got


def test_upgrade_inside_intercepted_tls_to_a_tls_origin(sonic_run, pki, tmp_path):
    """A protocol upgrade (websocket's handshake) inside an intercepted
    CONNECT tunnel to an origin over TLS: the 101 comes back, the bytes after
    it go both ways through both TLS sessions, and each end passes on as a
    close_notify."""
    import ssl
    import origin as origin_mod
    o = origin_mod.Origin(tls=(pki.cert, pki.key)).start()
    try:
        p = start(sonic_run, pki, tmp_path, FORWARD, ["--tls", "intercept", "--upstream-ca", pki.ca])
        s = socket.create_connection(("127.0.0.1", p.port), timeout=30)
        s.sendall(b"CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % (o.port, o.port))
        status, _, _, rest = origin_mod.read_response(s, method="CONNECT")
        assert status == 200 and rest == b""
        t = ssl.create_default_context(cafile=pki.sonic_ca).wrap_socket(s, server_hostname="localhost")
        echo_upgraded(t, upgrade_request(t))
        assert o.events_of("upgraded")
        assert not o.events_of("tls_failed")
        m = proxyrun.metrics(p.admin)
        assert m['sonic_tunnels_total{kind="upgrade"}'] == 1, m
        assert m['sonic_tls_upstream_handshakes_total{outcome="full"}'] == 1
        assert m['sonic_tunnel_bytes_total{direction="upstream",path="copied"}'] >= 1 << 20, m
    finally:
        o.stop()


def test_upgrade_at_a_tls_listener_to_a_plain_origin(sonic_run, pki, tmp_path):
    """The same at a reverse listener with tls = "intercept" in front of a
    plain origin: TLS on the client's side only."""
    import ssl
    import origin as origin_mod
    o = origin_mod.Origin().start()
    try:
        p = start(sonic_run, pki, tmp_path, REVERSE % o.address)
        s = socket.create_connection(("127.0.0.1", p.port), timeout=30)
        t = ssl.create_default_context(cafile=pki.sonic_ca).wrap_socket(s, server_hostname="localhost")
        echo_upgraded(t, upgrade_request(t))
        assert o.events_of("upgraded")
        assert proxyrun.metrics(p.admin)['sonic_tunnels_total{kind="upgrade"}'] == 1
    finally:
        o.stop()


PROBE = r"""
import json, select, socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
req = b"GET / HTTP/1.1\r\nHost: probe.stall.test\r\n\r\n"
def connect():
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="probe.stall.test")
s = connect()
def ask():
    # The wait of one request on the open connection, or None when sonic
    # closed it (keepalive_requests): then a new one is opened for the next.
    global s
    t0 = time.monotonic()
    s.sendall(req)
    got = b""
    while not got.endswith(b"hello from nginx\n"):
        chunk = s.recv(4096)
        if not chunk:
            s.close()
            s = connect()
            return None
        got += chunk
    return time.monotonic() - t0
ask()
print("ready", flush=True)
# Each line read starts a measurement: a request every 3 ms on the open
# connection until the next line; then their waits, as JSON.
while sys.stdin.readline():
    waits = []
    while not select.select([sys.stdin], [], [], 0.003)[0]:
        w = ask()
        if w is not None:
            waits.append(w)
    sys.stdin.readline()
    print(json.dumps(waits), flush=True)
"""


class Probe:
    """A kept-alive HTTPS connection through sonic, in a process of its own
    (the storm's threads do not delay it): measure(during) returns the wait
    of every request it made while DURING ran."""

    def __init__(self, port, ca):
        self.proc = subprocess.Popen(["python3", "-c", PROBE, str(port), ca],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def measure(self, during):
        self.proc.stdin.write("start\n")
        self.proc.stdin.flush()
        time.sleep(0.05)
        during()
        time.sleep(0.05)
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        waits = __import__("json").loads(self.proc.stdout.readline())
        assert len(waits) >= 10, waits
        return sorted(waits)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)


STORM = r"""
import selectors, socket, ssl, sys, time
port, names = int(sys.argv[1]), sys.argv[2:]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
# Every connection open and its ClientHello made (the client's key share
# included) before the signal: then the hellos go out back to back.
conns = []
for name in names:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setblocking(False)
    into, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(into, out, server_hostname=name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    conns.append((s, tls, into, out.read(), out))
print("ready", flush=True)
sys.stdin.readline()
sel = selectors.DefaultSelector()
for c in conns:
    c[0].send(c[3])
    sel.register(c[0], selectors.EVENT_READ, c)
done, end = 0, time.monotonic() + 60
while sel.get_map() and time.monotonic() < end:
    for key, _ in sel.select(1):
        s, tls, into, _, out = key.data
        data = s.recv(65536)
        finished = not data
        if data:
            into.write(data)
            try:
                tls.do_handshake()
                done += 1
                finished = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                finished = True
            s.setblocking(True)
            s.sendall(out.read())
            s.setblocking(False)
        if finished:
            sel.unregister(s)
            s.close()
print(done, flush=True)
"""


def handshake_storm(port, names):
    """One handshake per name, all at once, from a process of its own at
    nice 19: every connection is open and its ClientHello made first, then
    the 200 hellos are sent back to back. (The client's own handshake CPU on
    a 2-CPU host would otherwise take the CPU from the server it measures,
    and spread the burst.) Returns how many completed."""
    storm = subprocess.Popen(["nice", "-n", "19", "python3", "-c", STORM, str(port)] + list(names),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert storm.stdout.readline().strip() == "ready"
        storm.stdin.write("go\n")
        storm.stdin.flush()
        return int(storm.stdout.readline())
    finally:
        storm.stdin.close()
        storm.wait(60)


def test_a_burst_of_handshakes_for_new_names_does_not_stall_open_connections(sonic_run, pki, tmp_path):
    """200 handshakes at once, each for a name never seen, while a kept-alive
    HTTPS connection (another process) asks every 3 ms: the leaves are minted
    off the event loop and the handshake steps take turns with the open
    connection's I/O (one per turn of the event loop), so none of its
    requests waits more than 50 ms. Three rounds, each a minting storm (200
    new names) and the same storm again with every name in memory (the
    handshakes alone, now a burst as sharp: nothing to wait for); the bound
    holds for the median round of each kind (one round may meet another
    tenant's burst on a shared host). Skipped loudly when the host is
    overloaded (load average over 2x the CPUs) or stalls the connection
    past the bound with no storm at all."""
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    if load > 2 * cpus and not os.environ.get("SONIC_FORCE_LATENCY"):
        pytest.skip("SKIPPED LOUDLY: load average %.1f on %d CPUs (over 2x): a 50 ms latency bound means "
                    "nothing on an overloaded host; SONIC_FORCE_LATENCY=1 runs it anyway" % (load, cpus))
    o = proxyrun.Nginx(str(tmp_path))
    probe = None
    try:
        p = start(sonic_run, pki, tmp_path, REVERSE % o.address)
        probe = Probe(p.port, pki.sonic_ca)
        # The host alone: the same connection with nothing else going on.
        # A host that holds it past the bound by itself (other tenants'
        # load, a VM's stolen time) cannot judge sonic.
        idle = probe.measure(lambda: time.sleep(1.5))
        if idle[-1] > 0.050 and not os.environ.get("SONIC_FORCE_LATENCY"):
            pytest.skip("SKIPPED LOUDLY: with no storm at all a request waited %.1f ms on this host (load %.1f): "
                        "a 50 ms bound means nothing here" % (idle[-1] * 1000, os.getloadavg()[0]))
        minting, cached = [], []
        for r in range(3):
            names = ["n%d.r%d.stall.test" % (i, r) for i in range(200)]
            counts = []
            minting.append(probe.measure(lambda: counts.append(handshake_storm(p.port, names))))
            cached.append(probe.measure(lambda: counts.append(handshake_storm(p.port, names))))
            assert counts == [200, 200], counts
        ms = lambda x: "%.1f" % (x * 1000)  # noqa: E731
        print("\nidle: median %s ms, worst %s ms over %d requests" % (ms(idle[len(idle) // 2]), ms(idle[-1]), len(idle)))
        for i in range(3):
            print("round %d: worst wait minting %s ms, cached %s ms (medians %s / %s ms, %d / %d requests)" % (
                i, ms(minting[i][-1]), ms(cached[i][-1]), ms(minting[i][len(minting[i]) // 2]),
                ms(cached[i][len(cached[i]) // 2]), len(minting[i]), len(cached[i])))
        m = proxyrun.metrics(p.admin)
        assert m['sonic_tls_certificates_total{lookup="miss"}'] >= 600
        assert m['sonic_tls_certificates_total{lookup="hit"}'] >= 600
        # The bursts queued: handshake steps waited their turn behind the probe's I/O.
        assert m["sonic_tls_handshake_waits_total"] > 0, m
        print("handshake steps that waited a turn: %d" % m["sonic_tls_handshake_waits_total"])
        worst_minting = sorted(w[-1] for w in minting)
        worst_cached = sorted(w[-1] for w in cached)
        assert worst_minting[1] <= 0.050, "minting storms held a request on an open connection %s ms" % (
            ", ".join(map(ms, worst_minting)))
        assert worst_cached[1] <= 0.050, "handshake storms held a request on an open connection %s ms" % (
            ", ".join(map(ms, worst_cached)))
    finally:
        if probe:
            probe.close()
        o.stop()
