"""sonic ca and sonic cert: the CA, minted leaves checked by real TLS
tools (openssl, certtool, curl against openssl s_server and gnutls-serv),
the leaf cache on disk, and the system trust store."""
import base64
import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time

import pytest

import sonictest

TOOLS = ["openssl", "certtool", "gnutls-serv", "curl", "setpriv"]


@pytest.fixture
def state(tmp_path_factory):
    """A state directory of this test's own, removed afterwards."""
    path = os.path.join(tempfile.gettempdir(), sonictest.unique("state"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Cli:
    def __init__(self, state):
        self.state = state

    def run(self, *args, **kw):
        argv = [sonictest.SONIC, "--state-dir", self.state] + [str(a) for a in args]
        return sonictest.Result(subprocess.run(argv, capture_output=True, text=True,
                                               timeout=sonictest.scaled(120), **kw))

    def ok(self, *args):
        r = self.run("-j", *args)
        assert r.code == 0, r
        return r.json() if r.out.strip() else None

    def leaf_file(self, name):
        return os.path.join(self.state, "certs", name + ".pem")


@pytest.fixture
def cli(state):
    for tool in TOOLS:
        assert shutil.which(tool), "%s is missing: run packaging/install-deps" % tool
    return Cli(state)


@pytest.fixture
def ca(cli):
    cli.ok("ca", "init")
    path = os.path.join(cli.state, "ca.crt")
    with open(path, "w") as f:
        f.write(cli.run("ca", "export").out)
    return path


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def openssl_verify(ca, leaf, *check):
    return subprocess.run(["openssl", "verify", "-CAfile", ca] + list(check) + [leaf],
                          capture_output=True, text=True)


def certtool_verify(ca, leaf, host):
    r = subprocess.run(["certtool", "--verify", "--load-ca-certificate", ca, "--infile", leaf,
                        "--verify-hostname", host], capture_output=True, text=True)
    return r.returncode == 0 and "Verified" in r.stdout and "NOT" not in r.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "server exited: %s" % proc.stderr.read()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("port %d never opened" % port)


def test_no_ca_is_an_environment_error(cli):
    for args in (["cert", "mint", "example.com"], ["ca", "show"], ["ca", "export"], ["cert", "list"]):
        r = cli.run(*args)
        assert r.code == 3, r
        assert "sonic ca init" in r.err
    r = cli.run("-j", "cert", "mint", "example.com")
    assert r.error()["exit_code"] == 3
    assert not os.path.exists(os.path.join(cli.state, "certs"))


def test_ca_init_is_private_and_idempotent(cli):
    first = cli.ok("ca", "init")
    assert first["changed"] is True
    assert first["key_type"] == "ecdsa-p256"
    assert mode(os.path.join(cli.state, "ca")) == 0o700
    assert mode(os.path.join(cli.state, "ca", "ca.pem")) == 0o600

    again = cli.ok("ca", "init", "--key-type", "rsa-2048")
    assert again["changed"] is False
    assert again["fingerprint_sha256"] == first["fingerprint_sha256"]

    cli.ok("cert", "mint", "a.example", "b.example")
    forced = cli.ok("ca", "init", "--force", "--key-type", "rsa-2048", "--cn", "Lab CA", "--days", "30")
    assert forced["changed"] is True
    assert forced["leaves_removed"] == 2
    assert forced["fingerprint_sha256"] != first["fingerprint_sha256"]
    assert os.listdir(os.path.join(cli.state, "certs")) == []

    shown = cli.ok("ca", "show")
    assert shown["subject"] == "CN=Lab CA,O=sonic"
    assert shown["key_type"] == "rsa-2048"
    assert shown["expired"] is False
    pem = cli.run("ca", "export").out
    der = subprocess.run(["openssl", "x509", "-outform", "der"], input=pem.encode(), capture_output=True).stdout
    assert shown["fingerprint_sha256"] == ":".join("%02X" % b for b in hashlib.sha256(der).digest())

    r = cli.run("ca", "init", "--force", "--key-type", "dsa")
    assert r.code == 1 and "--key-type" in r.err


def test_ca_exports_parse_with_openssl(cli, ca, state):
    fingerprint = cli.ok("ca", "show")["fingerprint_sha256"]
    der_file = os.path.join(state, "ca.cer")
    r = cli.ok("ca", "export", "--format", "der", "--out", der_file)
    assert r["changed"] is True
    assert cli.ok("ca", "export", "--format", "der", "--out", der_file)["changed"] is False
    out = subprocess.run(["openssl", "x509", "-inform", "der", "-in", der_file, "-noout", "-fingerprint",
                          "-sha256"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith(fingerprint)

    p12_file = os.path.join(state, "ca.p12")
    assert cli.ok("ca", "export", "--format", "p12", "--out", p12_file)["changed"] is True
    assert cli.ok("ca", "export", "--format", "p12", "--out", p12_file)["changed"] is False
    out = subprocess.run(["openssl", "pkcs12", "-in", p12_file, "-passin", "pass:", "-nokeys"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "BEGIN CERTIFICATE" in out.stdout
    info = subprocess.run(["openssl", "pkcs12", "-in", p12_file, "-passin", "pass:", "-info", "-noout"],
                          capture_output=True, text=True)
    assert "Shrouded Keybag" not in info.stdout + info.stderr
    with open(ca) as f:
        assert out.stdout.split("-----BEGIN CERTIFICATE-----")[1] == f.read().split("-----BEGIN CERTIFICATE-----")[1]

    j = cli.ok("ca", "export", "--format", "der")
    with open(der_file, "rb") as f:
        assert base64.b64decode(j["base64"]) == f.read()
    assert "PRIVATE" not in cli.run("ca", "export").out


def test_leaves_verify_for_their_names_only(cli, ca):
    names = ["www.example.com", "*.wild.example", "192.0.2.7", "2001:db8::7"]
    minted = cli.ok("cert", "mint", *names)
    assert minted["changed"] is True
    assert [c["name"] for c in minted["certificates"]] == names
    assert all(c["minted"] for c in minted["certificates"])
    assert mode(os.path.join(cli.state, "certs")) == 0o700
    for name in names:
        assert mode(cli.leaf_file(name)) == 0o600

    www = cli.leaf_file("www.example.com")
    assert openssl_verify(ca, www, "-verify_hostname", "www.example.com").returncode == 0
    assert openssl_verify(ca, www, "-verify_hostname", "example.com").returncode != 0
    assert openssl_verify(ca, www, "-verify_hostname", "www.example.org").returncode != 0
    assert certtool_verify(ca, www, "www.example.com")
    assert not certtool_verify(ca, www, "mail.example.com")

    wild = cli.leaf_file("*.wild.example")
    assert openssl_verify(ca, wild, "-verify_hostname", "a.wild.example").returncode == 0
    assert openssl_verify(ca, wild, "-verify_hostname", "a.b.wild.example").returncode != 0
    assert certtool_verify(ca, wild, "a.wild.example")
    assert not certtool_verify(ca, wild, "wild.example")

    assert openssl_verify(ca, cli.leaf_file("192.0.2.7"), "-verify_ip", "192.0.2.7").returncode == 0
    assert openssl_verify(ca, cli.leaf_file("192.0.2.7"), "-verify_ip", "192.0.2.8").returncode != 0
    assert openssl_verify(ca, cli.leaf_file("2001:db8::7"), "-verify_ip", "2001:db8::7").returncode == 0
    assert openssl_verify(ca, cli.leaf_file("2001:db8::7"), "-verify_ip", "2001:db8::8").returncode != 0

    text = subprocess.run(["openssl", "x509", "-in", www, "-noout", "-text"], capture_output=True, text=True).stdout
    assert "TLS Web Server Authentication" in text
    assert "Authority Key Identifier" in text and "Subject Key Identifier" in text
    assert "CA:FALSE" in text and "prime256v1" in text

    again = cli.ok("cert", "mint", "WWW.Example.COM.")
    assert again["changed"] is False
    assert again["certificates"][0]["minted"] is False


def serve_and_fetch(server_argv, port, ca, name="tls.example"):
    server = subprocess.Popen(server_argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_port(port, server)
        ok = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                             "--cacert", ca, "--resolve", "%s:%d:127.0.0.1" % (name, port),
                             "https://%s:%d/" % (name, port)], capture_output=True, text=True)
        wrong = subprocess.run(["curl", "-sS", "-o", "/dev/null", "--max-time", "10", "--cacert", ca,
                                "--resolve", "other.example:%d:127.0.0.1" % port,
                                "https://other.example:%d/" % port], capture_output=True, text=True)
        return ok, wrong
    finally:
        server.kill()
        server.wait()


def test_curl_trusts_a_minted_leaf_served_by_openssl_and_gnutls(cli, ca):
    cli.ok("cert", "mint", "tls.example")
    leaf = cli.leaf_file("tls.example")
    port = free_port()
    ok, wrong = serve_and_fetch(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", leaf,
                                 "-key", leaf, "-www", "-quiet"], port, ca)
    assert ok.returncode == 0 and ok.stdout == "200", ok
    assert wrong.returncode == 60, wrong

    port = free_port()
    ok, wrong = serve_and_fetch(["gnutls-serv", "--http", "-p", str(port), "--x509certfile", leaf,
                                 "--x509keyfile", leaf], port, ca)
    assert ok.returncode == 0 and ok.stdout == "200", ok
    assert wrong.returncode == 60, wrong


def test_bad_names_are_refused_with_the_reason(cli, ca):
    cases = {
        "a..b": "empty label",
        "x" * 64 + ".example": "longer than 63",
        ".".join(["a" * 63] * 4): "longer than 253",
        "bad_label!.example": "a byte other than",
        "a.*.example": "leftmost label",
        "*.com": "at least two labels",
        "1.2.3": "numeric",
    }
    for name, why in cases.items():
        r = cli.run("cert", "mint", "--", name)
        assert r.code == 1, r
        assert why in r.err, r
        assert name[:20] in r.err, r
    r = cli.run("-j", "cert", "mint", "--", "")
    assert r.code == 1 and "empty" in r.error()["error"]
    # A bad name among good ones mints nothing.
    assert cli.run("cert", "mint", "good.example", "a..b").code == 1
    assert not os.path.exists(cli.leaf_file("good.example"))

    idn = cli.ok("cert", "mint", "bücher.example")
    assert idn["certificates"][0]["name"] == "xn--bcher-kva.example"
    # A zero-width joiner has no IDNA form; a stray byte is no UTF-8.
    for name in ("a\u200d.example".encode(), b"\xff.example"):
        r = subprocess.run([sonictest.SONIC.encode(), b"--state-dir", cli.state.encode(), b"cert", b"mint", name],
                           capture_output=True)
        assert r.returncode == 1, r
        assert b"internationalised name" in r.stderr


def test_a_corrupt_cache_file_is_minted_anew(cli, ca):
    cli.ok("cert", "mint", "corrupt.example")
    with open(cli.leaf_file("corrupt.example"), "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    listed = cli.run("-j", "cert", "list")
    assert listed.code == 0
    assert "Warning" in listed.err
    assert [c["state"] for c in listed.json()["certificates"]] == ["corrupt"]
    r = cli.run("-j", "cert", "mint", "corrupt.example")
    assert r.code == 0, r
    assert "Warning" in r.err and "corrupt.example" in r.err
    assert r.json()["certificates"][0]["minted"] is True
    assert openssl_verify(ca, cli.leaf_file("corrupt.example"), "-verify_hostname", "corrupt.example").returncode == 0


def make_expired_leaf(cli, name):
    """A leaf for NAME signed by sonic's CA that expired yesterday (certtool)."""
    work = os.path.join(cli.state, "expired-work")
    os.makedirs(work, exist_ok=True)
    key = os.path.join(work, "key.pem")
    template = os.path.join(work, "template")
    subprocess.run(["certtool", "--generate-privkey", "--key-type", "ecdsa", "--outfile", key],
                   check=True, capture_output=True)
    with open(template, "w") as f:
        f.write('cn = "%s"\ndns_name = "%s"\ntls_www_server\nsigning_key\n'
                'activation_date = "2020-01-01 00:00:00 UTC"\nexpiration_date = "%s"\n'
                % (name, name, time.strftime("%Y-%m-%d 00:00:00 UTC", time.gmtime(time.time() - 86400))))
    ca_pem = os.path.join(cli.state, "ca", "ca.pem")
    cert = subprocess.run(["certtool", "--generate-certificate", "--load-privkey", key, "--load-ca-privkey", ca_pem,
                           "--load-ca-certificate", ca_pem, "--template", template],
                          check=True, capture_output=True, text=True).stdout
    with open(key) as f:
        key_pem = f.read()
    with open(cli.leaf_file(name), "w") as f:
        f.write(cert[cert.index("-----BEGIN CERTIFICATE-----"):] + key_pem)
    os.chmod(cli.leaf_file(name), 0o600)


def test_list_show_purge_and_expiry(cli, ca):
    cli.ok("cert", "mint", "keep.example", "drop.example", "10.1.2.3")
    make_expired_leaf(cli, "old.example")
    states = {c["name"]: c["state"] for c in cli.ok("cert", "list")["certificates"]}
    assert states == {"keep.example": "valid", "drop.example": "valid", "10.1.2.3": "valid", "old.example": "expired"}

    pem = cli.run("cert", "show", "Keep.Example").out
    assert pem.startswith("-----BEGIN CERTIFICATE-----") and "PRIVATE" not in pem
    shown = cli.ok("cert", "show", "keep.example")
    assert shown["names"] == ["keep.example"]
    assert shown["state"] == "valid"
    assert shown["key_type"] == "ecdsa-p256"
    assert shown["pem"] == pem
    r = cli.run("cert", "show", "never.example")
    assert r.code == 1 and "sonic cert mint never.example" in r.err
    assert "Usage:" not in r.err, "a name not cached is not a command-line mistake"

    # An expired leaf is minted anew when asked for.
    r = cli.ok("cert", "mint", "old.example")
    assert r["certificates"][0]["minted"] is True
    make_expired_leaf(cli, "old.example")

    assert cli.ok("cert", "purge", "--expired") == {"changed": True, "removed": ["old.example"]}
    assert cli.ok("cert", "purge", "--expired")["changed"] is False
    assert cli.ok("cert", "purge", "drop.example", "nothere.example")["removed"] == ["drop.example"]
    assert not os.path.exists(cli.leaf_file("drop.example"))
    r = cli.run("cert", "purge")
    assert r.code == 1 and "Usage: sonic cert purge" in r.err
    assert cli.run("cert", "purge", "--all", "--expired").code == 1
    # A name too long for a file name is stored under its hash, and still
    # reported by its name.
    long_name = ".".join(["a" * 63] * 3 + ["b" * 61])
    cli.ok("cert", "mint", long_name)
    assert sorted(cli.ok("cert", "purge", "--all")["removed"]) == sorted(["10.1.2.3", "keep.example", long_name])
    assert cli.ok("cert", "list")["certificates"] == []
    assert cli.ok("cert", "purge", "--all")["changed"] is False


def test_leaves_of_a_replaced_ca_are_reminted(cli, ca, state):
    cli.ok("cert", "mint", "swap.example")
    ca_file = os.path.join(cli.state, "ca", "ca.pem")
    saved = os.path.join(state, "old-ca")
    shutil.copytree(os.path.join(cli.state, "ca"), saved)
    cli.ok("ca", "init", "--force")
    cli.ok("cert", "mint", "swap.example")
    shutil.copy(os.path.join(saved, "ca.pem"), ca_file)  # the old CA is back
    assert cli.ok("cert", "list")["certificates"][0]["state"] == "other-ca"
    assert cli.ok("cert", "mint", "swap.example")["certificates"][0]["minted"] is True


def test_an_unwritable_state_dir_is_an_environment_error(cli, state):
    os.makedirs(state, mode=0o755)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    r = sonictest.Result(subprocess.run(nobody + [sonictest.SONIC, "--state-dir", state, "ca", "init"],
                                        capture_output=True, text=True))
    assert r.code == 3, r
    assert "Permission denied" in r.err

    cli.ok("ca", "init")
    os.chmod(state, 0o555)
    os.chmod(os.path.join(state, "ca"), 0o755)
    os.chmod(os.path.join(state, "ca", "ca.pem"), 0o644)
    r = sonictest.Result(subprocess.run(nobody + [sonictest.SONIC, "--state-dir", state, "cert", "mint", "x.example"],
                                        capture_output=True, text=True))
    assert r.code == 3, r
    assert "certs" in r.err


def trust_layout():
    if os.path.isdir("/usr/local/share/ca-certificates") and shutil.which("update-ca-certificates"):
        return "/usr/local/share/ca-certificates/sonic-ca.crt", "/etc/ssl/certs/ca-certificates.crt"
    if os.path.isdir("/etc/pki/ca-trust/source/anchors") and shutil.which("update-ca-trust"):
        return "/etc/pki/ca-trust/source/anchors/sonic-ca.crt", "/etc/pki/tls/certs/ca-bundle.crt"
    return None, None


@pytest.fixture
def trust_store():
    """The system trust store, restored exactly afterwards: sonic's anchor
    file as it was (a real installation's CA may be there), bundles rebuilt."""
    anchor, bundle = trust_layout()
    if anchor is None:
        pytest.skip("no Debian or RHEL trust store layout on this host")
    saved = open(anchor, "rb").read() if os.path.exists(anchor) else None
    with open(bundle, "rb") as f:
        before = f.read()
    yield anchor, bundle, before
    if saved is None:
        if os.path.exists(anchor):
            os.unlink(anchor)
    else:
        with open(anchor, "wb") as f:
            f.write(saved)
    if open(bundle, "rb").read() != before or links_to(anchor):
        subprocess.run(["update-ca-certificates", "--fresh"] if "ssl" in bundle else ["update-ca-trust", "extract"],
                       capture_output=True)


def test_trust_installs_and_removes_exactly(cli, ca, trust_store):
    anchor, bundle, before = trust_store
    if os.path.exists(anchor):
        cli.ok("ca", "trust", "--remove")
        with open(bundle, "rb") as f:
            before = f.read()
    r = cli.ok("ca", "trust")
    assert r["changed"] is True and r["path"] == anchor
    if "ssl" in bundle:
        assert links_to(anchor) != []
    assert cli.ok("ca", "trust")["changed"] is False
    assert cli.ok("ca", "show")["trusted"] is True
    with open(ca) as f:
        ca_body = f.read().split("-----BEGIN CERTIFICATE-----")[1].split("-----END")[0]
    with open(bundle) as f:
        assert ca_body in f.read()

    cli.ok("cert", "mint", "trusted.example")
    leaf = cli.leaf_file("trusted.example")
    assert subprocess.run(["openssl", "verify", "-CAfile", bundle, "-verify_hostname", "trusted.example", leaf],
                          capture_output=True).returncode == 0

    r = cli.ok("ca", "trust", "--remove")
    assert r["changed"] is True
    assert not os.path.exists(anchor)
    assert cli.ok("ca", "trust", "--remove")["changed"] is False
    assert cli.ok("ca", "show")["trusted"] is False
    with open(bundle, "rb") as f:
        assert f.read() == before
    assert links_to(anchor) == []


def links_to(anchor):
    """Symlinks under the hashed certificate directories that lead to ANCHOR."""
    found = []
    for top in ("/etc/ssl/certs", "/etc/pki/tls/certs"):
        if not os.path.isdir(top):
            continue
        for entry in os.scandir(top):
            if entry.is_symlink() and os.path.realpath(entry.path) == os.path.realpath(anchor):
                found.append(entry.path)
    return found


def test_help_lists_the_verbs(cli):
    r = cli.run("ca", "help")
    assert r.code == 0
    for verb in ("init", "show", "export", "trust"):
        assert verb in r.out
    r = cli.run("cert", "help")
    for verb in ("mint", "list", "show", "purge"):
        assert verb in r.out
    assert json.loads(cli.run("-j", "cert", "frob").err)["exit_code"] == 1
