"""Only connections whose both ends are local are accelerated, judged per
network namespace (root). Every namespace and link here is made by the test
and removed by it."""
import subprocess

import pytest

import sonictest
from sonictest import PYTHON, MOVER, mover_report, spawn

# Every test here needs accel; where it cannot load, each skips with the reason.
pytestmark = pytest.mark.usefixtures("accel_family")

MiB = 1 << 20


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True)


@pytest.fixture
def netns():
    made = []

    def make(tag):
        name = sonictest.unique(tag)[:40]
        sh("ip", "netns", "add", name)
        made.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name
    yield make
    for name in made:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def in_netns(ns, argv):
    # nsenter --net keeps the mount namespace (ip netns exec would remount
    # /sys and hide bpffs).
    return ["nsenter", "--net=/run/netns/" + ns] + argv


def move_in(ns, cgroup, **options):
    argv = [PYTHON, MOVER]
    for k, v in options.items():
        argv += ["--" + k.replace("_", "-"), str(v)]
    p = spawn(in_netns(ns, argv), cgroup, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return mover_report(p)


def test_a_connection_between_two_namespaces_is_not_local(sonic, cgroup, netns):
    a, b = netns("a"), netns("b")
    veth_a, veth_b = "sva%d" % (hash(a) % 100000), "svb%d" % (hash(a) % 100000)
    sh("ip", "link", "add", veth_a, "netns", a, "type", "veth", "peer", "name", veth_b, "netns", b)
    sh("ip", "-n", a, "addr", "add", "10.231.0.1/24", "dev", veth_a)
    sh("ip", "-n", b, "addr", "add", "10.231.0.2/24", "dev", veth_b)
    sh("ip", "-n", a, "link", "set", veth_a, "up")
    sh("ip", "-n", b, "link", "set", veth_b, "up")
    sonic.ok("accel", "enable", "cgroup", cgroup)

    port = 23000 + hash(b) % 1000
    server = spawn(in_netns(b, [PYTHON, "-c", """
import socket, sys
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("10.231.0.2", %d)); l.listen(1); print("ready", flush=True)
s, _ = l.accept(); n = 0
while True:
    d = s.recv(65536)
    if not d: break
    n += len(d); s.sendall(d)
print(n)
""" % port]), cgroup, stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    before = sonic.stats()
    client = subprocess.run(["nsenter", "--net=/run/netns/" + a, PYTHON, "-c", """
import os, socket
c = socket.create_connection(("10.231.0.2", %d)); data = os.urandom(%d); c.sendall(data)
c.shutdown(socket.SHUT_WR); got = b""
while True:
    d = c.recv(65536)
    if not d: break
    got += d
print("same" if got == data else "differs")
""" % (port, MiB)], capture_output=True, text=True, timeout=60, preexec_fn=lambda: open(
        cgroup + "/cgroup.procs", "w").write(str(__import__("os").getpid())))
    assert client.stdout.strip() == "same", client
    assert server.communicate(timeout=30)[0].strip() == str(MiB)
    d = {k: sonic.stats()[k] - before[k] for k in before}
    assert d["skipped_remote"] == 2, d
    assert d["inserted"] == 0 and d["redirects"] == 0


def test_an_address_of_the_namespace_counts_as_local(sonic, cgroup, netns):
    ns = netns("local")
    # Non-loopback addresses of the namespace (on lo: no extra driver needed).
    sh("ip", "-n", ns, "addr", "add", "10.232.0.1/32", "dev", "lo")
    sh("ip", "-n", ns, "addr", "add", "fd00:5c::1/128", "dev", "lo", "nodad")

    # enable records the addresses of the namespace it runs in.
    r = subprocess.run(in_netns(ns, [sonictest.SONIC, "--bpffs", sonic.bpffs, "-j", "accel", "enable",
                                     "cgroup", cgroup]), capture_output=True, text=True)
    assert r.returncode == 0, r
    import json
    assert json.loads(r.stdout)["local_addresses"] >= 2

    for address in ("10.232.0.1", "fd00:5c::1"):
        before = sonic.stats()
        family = "6" if ":" in address else "4"
        assert move_in(ns, cgroup, conns=4, bytes=MiB, family=family, address=address)["ok"]
        d = {k: sonic.stats()[k] - before[k] for k in before}
        assert d["inserted"] == 8 and d["skipped_remote"] == 0, (address, d)
        assert d["redirect_bytes"] >= 0.9 * 2 * 4 * MiB

    # The same address means nothing in another namespace's key space:
    # sonic's own namespace never recorded it.
    status = sonic.ok("accel", "status")
    assert status["local_addresses"] >= 2
