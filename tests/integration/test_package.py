"""The Debian package (root): packaging/build-deb builds it (or
SONIC_TEST_DEB names one already built), then its file list, modes,
conffiles, Depends and maintainer scripts are checked, lintian must report
no error and only the warnings named below, and it is unpacked into a clean
root with dpkg --root, where the installed sonic checks the installed
configuration.

Building the package compiles sonic once more (minutes; ccache helps when
CCACHE_DIR is set). Without debhelper, dpkg-dev or lintian the tests skip
loudly: packaging/install-deps installs them."""
import glob
import os
import shutil
import stat
import subprocess
import tarfile

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = ["dpkg-buildpackage", "dh", "dpkg-deb", "lintian", "fakeroot"]

# lintian warnings the package is allowed, each with its reason (the note of
# issue 16 lists them too). Anything else fails the test.
# None so far: the override in packaging/debian/sonic.lintian-overrides
# (/var/lib/sonic is 0700: it holds the CA's key) silences the only one.
ALLOWED_WARNINGS = set()


def missing_tools():
    return [t for t in TOOLS if not shutil.which(t)]


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    missing = missing_tools()
    if missing:
        pytest.skip("SKIPPED: %s missing: run packaging/install-deps" % ", ".join(missing))
    given = os.environ.get("SONIC_TEST_DEB")
    if given:
        return given
    out = tmp_path_factory.mktemp("packages")
    r = subprocess.run([os.path.join(TOP, "packaging", "build-deb"), str(out)], capture_output=True, text=True,
                       timeout=1500, env=dict(os.environ, SONIC_LINTIAN="0"))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    debs = glob.glob(str(out / "sonic_*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


def contents(deb):
    """path -> (mode string, size) of every member of the data archive."""
    out = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
    files = {}
    for line in out.splitlines():
        parts = line.split(None, 5)
        path = parts[5].split(" -> ")[0]
        files[path[1:] if path.startswith(".") else path] = parts[0]
    return files


def control(deb, tmp_path):
    d = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", deb, str(d)], check=True)
    return d


def test_the_package_holds_the_files_where_debian_keeps_them(deb):
    files = contents(deb)
    expect = {
        "/usr/sbin/sonic": "-rwxr-xr-x",
        "/etc/sonic/sonic.toml": "-rw-r--r--",
        "/etc/sonic/apply.toml": "-rw-r--r--",
        "/usr/share/bash-completion/completions/sonic": "-rw-r--r--",
        "/usr/share/zsh/vendor-completions/_sonic": "-rw-r--r--",
        "/usr/share/fish/vendor_completions.d/sonic.fish": "-rw-r--r--",
        "/lib/systemd/system/sonic.service": "-rw-r--r--",
        "/lib/systemd/system/sonic-dataplane.service": "-rw-r--r--",
        "/var/lib/sonic/": "drwx------",
        "/usr/share/doc/sonic/copyright": "-rw-r--r--",
        "/usr/share/doc/sonic/examples/sonic.toml": "-rw-r--r--",
        "/usr/share/doc/sonic/examples/ansible/playbook.yml": "-rw-r--r--",
    }
    for page in os.listdir(os.path.join(TOP, "man")):
        expect["/usr/share/man/man8/%s.gz" % page] = "-rw-r--r--"
    wrong = {p: (m, files.get(p)) for p, m in expect.items() if files.get(p) != m}
    assert not wrong, wrong
    assert not [p for p in files if p.startswith("/usr/local")], "nothing under /usr/local"


def test_conffiles_depends_and_maintainer_scripts(deb, tmp_path):
    d = control(deb, tmp_path)
    assert sorted((d / "conffiles").read_text().split()) == ["/etc/sonic/apply.toml", "/etc/sonic/sonic.toml"]
    fields = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True, text=True,
                            check=True).stdout
    # From shlibs: the libraries the executable links, not a hand list.
    for lib in ("libbpf1", "libgnutls30", "libstdc++6", "libnl-route-3-200"):
        assert lib in fields, fields
    for script in ("postinst", "prerm", "postrm"):
        path = d / script
        assert path.exists(), script
        subprocess.run(["sh", "-n", str(path)], check=True)
    assert "prog unload" in (d / "prerm").read_text()
    assert "try-restart sonic.service" in (d / "postinst").read_text()
    assert not (d / "preinst").exists() or "sonic" in (d / "preinst").read_text()


def test_the_installed_configuration_is_the_embedded_default(deb, tmp_path):
    x = tmp_path / "x"
    subprocess.run(["dpkg-deb", "-x", deb, str(x)], check=True)
    with open(os.path.join(TOP, "core", "config", "default.toml")) as f:
        assert (x / "etc/sonic/sonic.toml").read_text() == f.read()


def test_lintian_has_no_error_and_only_named_warnings(deb):
    r = subprocess.run(["lintian", "--no-tag-display-limit", deb], capture_output=True, text=True, timeout=600)
    tags = [l for l in r.stdout.splitlines() if l[:2] in ("E:", "W:")]
    errors = [t for t in tags if t.startswith("E:")]
    assert not errors, r.stdout
    unnamed = [t for t in tags if t.startswith("W:") and t.split()[2] not in ALLOWED_WARNINGS]
    assert not unnamed, r.stdout


def test_unpacked_into_a_clean_root(deb, tmp_path):
    root = tmp_path / "root"
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    # --unpack runs no maintainer script (the package has no preinst), so the
    # root needs no shell; configure would run postinst inside it.
    r = subprocess.run(["dpkg", "--root", str(root), "--log", "/dev/null", "--unpack", deb],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    status = (root / "var/lib/dpkg/status").read_text()
    assert "Package: sonic" in status and "Status: install ok unpacked" in status, status
    assert " /etc/sonic/sonic.toml " in status and " /etc/sonic/apply.toml " in status, status
    assert stat.S_IMODE(os.stat(root / "var/lib/sonic").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(root / "usr/sbin/sonic").st_mode) == 0o755
    # Until configure, a conffile waits beside its place as FILE.dpkg-new.
    conf = root / "etc/sonic/sonic.toml.dpkg-new"
    applyf = root / "etc/sonic/apply.toml.dpkg-new"
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o644 and applyf.exists()
    sonic = str(root / "usr/sbin/sonic")
    r = subprocess.run([sonic, "-j", "run", "--config", str(conf), "--check"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and '"valid":true' in r.stdout, r
    r = subprocess.run([sonic, "-j", "--bpffs", "/sys/fs/bpf/sonic-pkg-test-unused", "apply", "-f",
                        str(applyf), "--check"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and '"changed":false' in r.stdout, r


def test_systemd_analyze_verifies_the_units(deb, tmp_path):
    """systemd-analyze verify in a root made of the package and the host's
    units (the targets the units name) and kill (ExecReload): it checks the
    keys, the dependencies and that each command exists there. Any warning
    (a misspelt value is only one) fails too."""
    if not shutil.which("systemd-analyze") or not os.path.isdir("/lib/systemd/system"):
        pytest.skip("SKIPPED: systemd-analyze or /lib/systemd/system missing (package systemd)")
    root = tmp_path / "x"
    subprocess.run(["dpkg-deb", "-x", deb, str(root)], check=True)
    units = root / "lib/systemd/system"
    for name in os.listdir("/lib/systemd/system"):
        src = os.path.join("/lib/systemd/system", name)
        if os.path.isfile(src) and not (units / name).exists():
            shutil.copy(src, units / name)
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy("/bin/kill" if os.path.exists("/bin/kill") else shutil.which("kill"), root / "bin/kill")
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", "--root", str(root),
                        str(units / "sonic.service"), str(units / "sonic-dataplane.service")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr
