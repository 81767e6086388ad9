"""Shared helpers for sonic's integration and end-to-end tests.

Every kernel object a test makes has a unique name (pid + random suffix), so
two runs cannot collide, and every fixture removes what it made even when the
test fails.
"""
import json
import os
import secrets
import shutil
import signal
import subprocess
import time

SONIC = os.environ.get("SONIC_BIN") or os.path.join(
    os.environ.get("SONIC_BUILD_DIR", "build"), "sonic")
REJECT = os.environ.get("SONIC_REJECT_BIN") or os.path.join(
    os.environ.get("SONIC_BUILD_DIR", "build"), "sonic_reject")
HERE = os.path.dirname(os.path.abspath(__file__))
MOVER = os.path.join(HERE, "mover.py")
PYTHON = "/usr/bin/python3"

# How much slower than a normal machine this one runs: SONIC_TEST_TIME_SCALE
# (tests/kernels/run sets it for a guest under TCG, where the CPU is
# emulated). Every time a test waits for something, at most, is scaled by it;
# what a test asserts is not.
TIME_SCALE = float(os.environ.get("SONIC_TEST_TIME_SCALE") or 1)


def scaled(seconds):
    """SECONDS of waiting on a normal machine, on this one."""
    return seconds * TIME_SCALE


def unique(name):
    """A name no other test run uses: sonic-test-NAME-PID-RANDOM."""
    return "sonic-test-%s-%d-%s" % (name, os.getpid(), secrets.token_hex(3))


def cgroup2_root():
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return fields[1]
    raise RuntimeError("no cgroup2 mount")


class Result:
    def __init__(self, proc):
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    def json(self):
        return json.loads(self.out)

    def error(self):
        return json.loads(self.err)

    def __repr__(self):
        return "Result(code=%d, out=%r, err=%r)" % (self.code, self.out, self.err)


class Sonic:
    """The sonic binary bound to one bpffs root; ENV adds to its environment
    (SONIC_BPF_REFUSE, for one)."""

    def __init__(self, bpffs, binary=SONIC, env=None):
        self.bpffs = bpffs
        self.binary = binary
        self.env = dict(os.environ, **(env or {}))

    def run(self, *args, timeout=120, prefix=()):
        argv = list(prefix) + [self.binary, "--bpffs", self.bpffs] + [str(a) for a in args]
        return Result(subprocess.run(argv, capture_output=True, text=True, timeout=scaled(timeout), env=self.env))

    def ok(self, *args, **kw):
        r = self.run("-j", *args, **kw)
        assert r.code == 0, r
        return r.json() if r.out.strip() else None

    def stats(self):
        return self.ok("stats", "accel")["accel"]


def wait_for(predicate, seconds=10.0, step=0.05):
    """Calls PREDICATE until it returns something true (which is returned)
    or SECONDS (scaled) pass (False)."""
    deadline = time.monotonic() + scaled(seconds)
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


def delta(after, before):
    """Counter increments between two `sonic stats accel` samples."""
    return {k: after[k] - before[k] for k in after if k != "sockets"}


def spawn(argv, cgroup=None, **kw):
    """Starts ARGV, inside CGROUP (a cgroup v2 directory) when given."""
    def enter():
        if cgroup:
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
    return subprocess.Popen(argv, preexec_fn=enter, **kw)


def end_process(p, sig=signal.SIGTERM, grace=5.0):
    """Ends P if it still runs: SIG, up to GRACE seconds for it to exit,
    then SIGKILL. Returns its exit code."""
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
    return p.returncode


def close_netns_lab(procs, namespaces):
    """Kills PROCS (Popen objects) and deletes the network namespaces, with
    the veth pairs and everything else in them."""
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.communicate()
    for ns in namespaces:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def tcp_mem_pages():
    """The host's TCP memory in pages (/proc/net/sockstat)."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("mem") + 1])
    raise RuntimeError("no TCP line in /proc/net/sockstat")


def mover(cgroup=None, **options):
    """Runs tests/lib/mover.py with OPTIONS (--key value) and returns its
    JSON report; the process runs inside CGROUP when given."""
    argv = [PYTHON, MOVER]
    for k, v in options.items():
        argv += ["--" + k.replace("_", "-"), str(v)]
    p = spawn(argv, cgroup, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p


def mover_report(p, timeout=180):
    out, err = p.communicate(timeout=scaled(timeout))
    assert p.returncode == 0, "mover failed (%d): %s %s" % (p.returncode, out, err)
    return json.loads(out)


def kill_cgroup(path):
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            pids = [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def remove_cgroup(path):
    for _ in range(100):
        kill_cgroup(path)
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("cannot remove cgroup " + path)


def make_cgroup(name, parent=None):
    path = os.path.join(parent or cgroup2_root(), unique(name))
    os.mkdir(path)
    return path


def remove_bpffs_root(root, binary=SONIC):
    """Unloads whatever sonic left under ROOT, then removes the directory."""
    if os.path.exists(root):
        subprocess.run([binary, "--bpffs", root, "-q", "prog", "unload", "--force", "--timeout", "1"],
                       capture_output=True, timeout=60)
    shutil.rmtree(root, ignore_errors=True)


def bpffs_tree(top="/sys/fs/bpf"):
    """Every path under TOP, for before/after comparisons."""
    paths = []
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            paths.append(os.path.join(dirpath, n))
    return sorted(paths)


def kernel_programs(prefix):
    """Names of loaded BPF programs starting with PREFIX (via bpftool)."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True).stdout
    return sorted(p.get("name", "") for p in json.loads(out or "[]") if p.get("name", "").startswith(prefix))


_family_refusals = None


def family_refusal(name):
    """Why sonic cannot load family NAME on this kernel, or None when it can:
    `sonic prog probe`'s own answer (SONIC_BPF_REFUSE included), asked once."""
    global _family_refusals
    if _family_refusals is None:
        probe = Sonic("/sys/fs/bpf/" + unique("probe")).ok("prog", "probe")
        _family_refusals = {f["name"]: None if f["available"] else f["reason"] for f in probe["families"]}
    return _family_refusals[name]


def require_families(*names):
    """Skips the calling test, naming the kernel's reason, when any family of
    NAMES cannot load here: a refused family is sonic's correct answer
    (exit 2 with a hint, tested as such), not a failure of the test."""
    import pytest
    for name in names:
        why = family_refusal(name)
        if why:
            pytest.skip("sonic's %s family is unavailable on this kernel: %s" % (name, why))


# accel's two release paths, and the environment that selects each: the
# iterator is sonic's first choice; SONIC_BPF_REFUSE makes it fall back to
# the walk on any kernel.
RELEASE_PATHS = {"iterator": {}, "walk": {"SONIC_BPF_REFUSE": "accel_release"}}
_release_refusal = {}


def release_path_refusal(path):
    """Why this kernel cannot run accel's release PATH, or None when it can:
    found by loading accel once into a scratch bpffs root."""
    if path not in _release_refusal:
        root = "/sys/fs/bpf/" + unique("probe")
        try:
            r = Sonic(root, env=RELEASE_PATHS[path]).run("-j", "prog", "load", "accel")
            loaded = r.json()["families"][0] if r.out.strip() else {}
            if loaded.get("release_path") == path:
                _release_refusal[path] = None
            else:
                refused = [x for x in (r.json()["refused"] if r.out.strip() else [])]
                _release_refusal[path] = "; ".join("%s: %s (%s)" % (x["program"], x["reason"], x["hint"])
                                                   for x in refused) or r.err.strip()
        finally:
            remove_bpffs_root(root)
    return _release_refusal[path]
