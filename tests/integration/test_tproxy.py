"""sonic tproxy: transparent steering through a gateway (root).

The lab (tests/lib/tproxy_lab.py) joins client, gateway and server network
namespaces with veth pairs. sonic runs in the gateway namespace with a bpffs
root of this test's own. The transparent listener is a fixture: today the
small Python proxy in tests/lib/tproxy_listener.py, later
`sonic run --mode transparent`.
"""
import subprocess

import pytest

import sonictest
import tproxy_lab
from tproxy_lab import SERVER4, SERVER6, Lab, PythonListener, SonicListener, nsexec, wait_for


@pytest.fixture
def lab():
    lab = Lab()
    lab.start_server()
    yield lab
    lab.close()


@pytest.fixture
def gw_sonic(lab, bpffs):
    """sonic run inside the gateway namespace; flushes what it steered.
    Skipped, with the kernel's reason, where steer cannot load."""
    sonictest.require_families("steer")
    s = sonictest.Sonic(bpffs)
    prefix = nsexec(lab.gateway, [])
    s.gw = lambda *args, **kw: s.run(*args, prefix=prefix, **kw)
    s.gw_ok = lambda *args, **kw: s.ok(*args, prefix=prefix, **kw)
    yield s
    s.run("tproxy", "flush", prefix=prefix)


@pytest.fixture
def listener(lab):
    """The transparent proxy in the gateway, on 127.0.0.1:15001 and
    [::1]:15001."""
    made = []

    def start(addrs=("127.0.0.1:15001", "[::1]:15001"), cgroup=None):
        p = PythonListener(lab, lab.gateway, addrs, cgroup=cgroup)
        made.append(p)
        return p
    yield start
    for p in made:
        p.stop()


def steer_stats(s):
    return s.gw_ok("stats", "steer")["steer"]


def body_of(result):
    code, out, err = result
    assert code == 0, "curl failed (%d): %s" % (code, err)
    return out.strip()


@pytest.mark.parametrize("server,target", [(SERVER4, "127.0.0.1:15001"), (SERVER6, "[::1]:15001")],
                         ids=["ipv4", "ipv6"])
def test_dev_rule_steers_matching_port_through_the_listener(lab, gw_sonic, listener, server, target):
    proxy = listener()
    added = gw_sonic.gw_ok("tproxy", "add", "dev", lab.gw_client_dev, "proto", "tcp", "dport", "80",
                           "to", target)
    assert added["changed"] is True and added["listener"] == "listening"

    assert body_of(lab.curl(lab.client, server, 80)) == "server port 80"
    seen = proxy.connections()
    assert [(c["orig"], c["orig_port"]) for c in seen] == [(server, 80)]
    st = steer_stats(gw_sonic)
    assert st["assigned_listener"] >= 1, st
    assert st["assigned_established"] >= 1, st  # the request after the SYN
    assert st["packets_assigned"] == st["assigned_listener"] + st["assigned_established"]

    # Not a steered port: straight through the gateway.
    assert body_of(lab.curl(lab.client, server, 8080)) == "server port 8080"
    assert len(proxy.connections()) == 1

    # flush: plain routing again, nothing of sonic's left in the gateway.
    flushed = gw_sonic.gw_ok("tproxy", "flush")
    assert flushed["changed"] is True and flushed["rules"] == 1 and flushed["filters"] == 1
    assert body_of(lab.curl(lab.client, server, 80)) == "server port 80"
    assert len(proxy.connections()) == 1
    rules = subprocess.run(nsexec(lab.gateway, ["ip", "rule"]), capture_output=True, text=True).stdout
    assert "5300" not in rules
    qdiscs = subprocess.run(nsexec(lab.gateway, ["tc", "qdisc", "show", "dev", lab.gw_client_dev]),
                            capture_output=True, text=True).stdout
    assert "clsact" not in qdiscs
    assert gw_sonic.gw_ok("tproxy", "list")["rules"] == []


def test_dst_prefix_limits_the_rule(lab, gw_sonic, listener):
    proxy = listener()
    gw_sonic.gw_ok("tproxy", "add", "dev", lab.gw_client_dev, "proto", "tcp", "dport", "80,8080",
                   "dst", "10.10.9.0/24", "to", "127.0.0.1:15001")
    assert body_of(lab.curl(lab.client, SERVER4, 80)) == "server port 80"
    assert proxy.connections() == []
    assert steer_stats(gw_sonic)["miss_no_rule"] >= 1
    gw_sonic.gw_ok("tproxy", "add", "dev", lab.gw_client_dev, "proto", "tcp", "dport", "80",
                   "dst", "10.10.2.0/24", "to", "127.0.0.1:15001")
    assert body_of(lab.curl(lab.client, SERVER4, 80)) == "server port 80"
    assert len(proxy.connections()) == 1


@pytest.mark.parametrize("longer_first", [True, False], ids=["longer_added_first", "shorter_added_first"])
def test_the_longest_dst_prefix_wins_whatever_the_order(lab, gw_sonic, listener, longer_first):
    # Two rules for one port: the steering program walks the port's rules in
    # slot order and keeps the longest match, so the order they were added
    # in must not matter (it did on Linux 6.1 for fw, whose walk is alike).
    near = listener(("127.0.0.1:15001",))
    far = listener(("127.0.0.1:15002",))
    longer = ("dst", "10.10.2.0/24", "to", "127.0.0.1:15001")
    shorter = ("dst", "10.10.0.0/16", "to", "127.0.0.1:15002")
    for words in ((longer, shorter) if longer_first else (shorter, longer)):
        gw_sonic.gw_ok("tproxy", "add", "dev", lab.gw_client_dev, "proto", "tcp", "dport", "80", *words)
    assert body_of(lab.curl(lab.client, SERVER4, 80)) == "server port 80"
    assert len(near.connections()) == 1 and far.connections() == []


def test_no_listener_drops_until_the_proxy_comes(lab, gw_sonic, listener):
    gw_sonic.gw_ok("tproxy", "add", "dev", lab.gw_client_dev, "proto", "tcp", "dport", "80",
                   "to", "127.0.0.1:15001")
    rows = gw_sonic.gw_ok("tproxy", "list")["rules"]
    assert len(rows) == 1 and rows[0]["listener"] == "no listener" and rows[0]["state"] == "active"
    code, _, _ = lab.curl(lab.client, SERVER4, 80, timeout=2)
    assert code != 0
    assert steer_stats(gw_sonic)["drop_no_listener"] >= 1

    proxy = listener()
    assert gw_sonic.gw_ok("tproxy", "list")["rules"][0]["listener"] == "listening"
    assert body_of(lab.curl(lab.client, SERVER4, 80)) == "server port 80"
    assert len(proxy.connections()) == 1


def test_list_reads_the_kernel_and_add_repairs(lab, gw_sonic, listener):
    spec = ("dev", lab.gw_client_dev, "proto", "tcp", "dport", "80,443,8000-8100", "to", "127.0.0.1:15001")
    assert gw_sonic.gw_ok("tproxy", "add", *spec)["changed"] is True
    again = gw_sonic.gw_ok("tproxy", "add", *spec)
    assert again["changed"] is False
    row, = gw_sonic.gw_ok("tproxy", "list")["rules"]
    assert row["dev"] == lab.gw_client_dev and row["dport"] == "80,443,8000-8100"
    assert row["to"] == "127.0.0.1:15001" and row["mark"] == "0x5300" and row["table"] == 5300
    # Someone removes the filter by hand: list says so, add puts it back.
    subprocess.run(nsexec(lab.gateway, ["tc", "qdisc", "del", "dev", lab.gw_client_dev, "clsact"]), check=True)
    assert gw_sonic.gw_ok("tproxy", "list")["rules"][0]["state"] == "filter missing"
    assert gw_sonic.gw_ok("tproxy", "add", *spec)["changed"] is True
    assert gw_sonic.gw_ok("tproxy", "list")["rules"][0]["state"] == "active"
    # del, then del again.
    assert gw_sonic.gw_ok("tproxy", "del", *spec)["changed"] is True
    assert gw_sonic.gw_ok("tproxy", "del", *spec)["changed"] is False
    assert gw_sonic.gw_ok("tproxy", "list")["rules"] == []
    assert gw_sonic.gw_ok("tproxy", "flush")["changed"] is False


def test_clsact_of_someone_else_is_kept(lab, gw_sonic):
    subprocess.run(nsexec(lab.gateway, ["tc", "qdisc", "add", "dev", lab.gw_client_dev, "clsact"]), check=True)
    gw_sonic.gw_ok("tproxy", "add", "dev", lab.gw_client_dev, "proto", "tcp", "dport", "80", "to",
                   "127.0.0.1:15001")
    flushed = gw_sonic.gw_ok("tproxy", "flush")
    assert flushed["filters"] == 1 and flushed["qdiscs"] == 0
    qdiscs = subprocess.run(nsexec(lab.gateway, ["tc", "qdisc", "show", "dev", lab.gw_client_dev]),
                            capture_output=True, text=True).stdout
    assert "clsact" in qdiscs


def bad(s, *args):
    r = s.gw("-j", "tproxy", *args)
    assert r.code == 1, r
    return r.error()["error"]


def test_bad_input(lab, gw_sonic, cgroup):
    dev = lab.gw_client_dev
    assert "nosuchdev0" in bad(gw_sonic, "add", "dev", "nosuchdev0", "proto", "tcp", "dport", "80", "to",
                               "127.0.0.1:1")
    assert "/nonexistent/cg" in bad(gw_sonic, "add", "cgroup", "/nonexistent/cg", "proto", "tcp", "dport",
                                    "80", "to", "127.0.0.1:1")
    for ports in ("0", "70000", "90-80", "80,,81", "http"):
        bad(gw_sonic, "add", "dev", dev, "proto", "tcp", "dport", ports, "to", "127.0.0.1:1")
    for cidr in ("10.0.0.0/33", "10.0.0.1/8", "10.0.0", "fd00::/129"):
        bad(gw_sonic, "add", "dev", dev, "proto", "tcp", "dport", "80", "dst", cidr, "to", "127.0.0.1:1")
    bad(gw_sonic, "add", "dev", dev, "proto", "udp", "dport", "80", "to", "127.0.0.1:1")
    bad(gw_sonic, "add", "dev", dev, "proto", "tcp", "dport", "80", "to", "127.0.0.1")
    bad(gw_sonic, "add", "dev", dev, "proto", "tcp", "dport", "80", "dst", "fd00::/8", "to", "127.0.0.1:1")
    bad(gw_sonic, "add", "dev", dev, "proto", "tcp", "dport", "80", "to", "127.0.0.1:1", "mark", "0x5301")
    bad(gw_sonic, "add", "cgroup", cgroup, "proto", "tcp", "dport", "80", "to", "127.0.0.1:1", "mark", "7")
    bad(gw_sonic, "add", "dev", dev, "cgroup", cgroup, "proto", "tcp", "dport", "80", "to", "127.0.0.1:1")
    # Conflicts: overlapping ports elsewhere, or a mark already taken.
    gw_sonic.gw_ok("tproxy", "add", "dev", dev, "proto", "tcp", "dport", "80-90", "to", "127.0.0.1:15001")
    assert "conflicts" in bad(gw_sonic, "add", "dev", dev, "proto", "tcp", "dport", "85", "to",
                              "127.0.0.1:15002")
    assert "elsewhere" in bad(gw_sonic, "add", "dev", dev, "proto", "tcp", "dport", "80-90", "to",
                              "127.0.0.1:15002")
    assert "table" in bad(gw_sonic, "add", "dev", lab.gw_server_dev, "proto", "tcp", "dport", "80", "to",
                          "127.0.0.1:15001", "table", "77")
    assert len(gw_sonic.gw_ok("tproxy", "list")["rules"]) == 1


def test_cgroup_rule_intercepts_only_processes_in_the_cgroup(lab, gw_sonic, listener, cgroup_factory):
    steered = cgroup_factory("steered")
    # The proxy runs inside the steered cgroup too: its upstream connects
    # carry the bypass mark and are not sent back to it.
    proxy = listener(cgroup=steered)
    for target in ("127.0.0.1:15001", "[::1]:15001"):
        added = gw_sonic.gw_ok("tproxy", "add", "cgroup", steered, "proto", "tcp", "dport", "80", "to", target)
        assert added["changed"] is True

    assert body_of(lab.curl(lab.gateway, SERVER4, 80, cgroup=steered)) == "server port 80"
    assert body_of(lab.curl(lab.gateway, SERVER6, 80, cgroup=steered)) == "server port 80"
    seen = proxy.connections()
    assert [(c["orig"], c["orig_port"], c["via"]) for c in seen] == [
        (SERVER4, 80, "so_original_dst"), (SERVER6, 80, "so_original_dst")]

    outside = cgroup_factory("outside")
    assert body_of(lab.curl(lab.gateway, SERVER4, 80, cgroup=outside)) == "server port 80"
    assert body_of(lab.curl(lab.gateway, SERVER4, 8080, cgroup=steered)) == "server port 8080"
    assert len(proxy.connections()) == 2

    st = steer_stats(gw_sonic)
    assert st["redirected"] == 2 and st["orig_recorded"] == 2 and st["orig_answered"] == 2, st
    assert st["bypassed"] == 2, st

    rows = gw_sonic.gw_ok("tproxy", "list")["rules"]
    assert {r["cgroup"] for r in rows} == {steered}
    assert all(r["state"] == "active" and r["listener"] == "listening" for r in rows)
    flushed = gw_sonic.gw_ok("tproxy", "flush")
    assert flushed["rules"] == 2 and flushed["links"] == 4
    assert body_of(lab.curl(lab.gateway, SERVER4, 80, cgroup=steered)) == "server port 80"
    assert len(proxy.connections()) == 2


def test_cgroup_rule_without_listener_refuses(lab, gw_sonic, cgroup):
    gw_sonic.gw_ok("tproxy", "add", "cgroup", cgroup, "proto", "tcp", "dport", "80", "to", "127.0.0.1:15009")
    code, _, err = lab.curl(lab.gateway, SERVER4, 80, cgroup=cgroup, timeout=3)
    assert code == 7, err  # curl: could not connect (refused at once)
    assert steer_stats(gw_sonic)["redirected_no_listener"] == 1


@pytest.fixture
def sonic_listener(lab, bpffs):
    """`sonic run --mode transparent` in the gateway on 127.0.0.1:15001 and
    [::1]:15001 (the same addresses as the Python listener)."""
    made = []

    def start(cgroup=None, workers=1, env=()):
        p = SonicListener(lab, lab.gateway, ("127.0.0.1:15001", "[::1]:15001"), cgroup=cgroup, bpffs=bpffs,
                          workers=workers, env=env)
        made.append(p)
        return p
    yield start
    for p in made:
        p.stop()


def sk_assign_takes_reuseport(gw_sonic):
    probe = gw_sonic.gw_ok("prog", "probe")
    return {a["name"]: a for a in probe["attach_points"]}["sk_assign_reuseport"]["available"]


# Two workers: a socket each (SO_REUSEPORT) where bpf_sk_assign takes such
# sockets, else one socket they share (before Linux 6.5, and here with the
# fault-injection switch), which tc steering must reach all the same.
@pytest.mark.parametrize("sockets", ["as_the_kernel_allows", "shared"])
def test_sonic_run_serves_dev_and_cgroup_steering(lab, gw_sonic, sonic_listener, cgroup_factory, sockets):
    steered = cgroup_factory("steered")
    env = ["SONIC_BPF_REFUSE=sk_assign_reuseport"] if sockets == "shared" else []
    # sonic run sits in the steered cgroup itself: its own upstream
    # connections must not come back to it.
    proxy = sonic_listener(cgroup=steered, workers=2, env=env)
    one_each = sockets != "shared" and sk_assign_takes_reuseport(gw_sonic) is True
    for addr in ("127.0.0.1:15001", "[::1]:15001"):
        assert proxy.listening_sockets(addr) == (2 if one_each else 1), addr
    if sockets == "shared":
        # tproxy add dev says what such a kernel needs of the listener.
        gw_sonic.env["SONIC_BPF_REFUSE"] = "sk_assign_reuseport"
        r = gw_sonic.gw("tproxy", "add", "dev", lab.gw_client_dev, "proto", "tcp", "dport", "80", "to",
                        "127.0.0.1:15001")
        del gw_sonic.env["SONIC_BPF_REFUSE"]
        assert r.code == 0 and "must not set SO_REUSEPORT" in r.err and "drop_assign_failed" in r.err, r
    for target in ("127.0.0.1:15001", "[::1]:15001"):
        gw_sonic.gw_ok("tproxy", "add", "dev", lab.gw_client_dev, "proto", "tcp", "dport", "80", "to", target)
        gw_sonic.gw_ok("tproxy", "add", "cgroup", steered, "proto", "tcp", "dport", "80", "to", target)

    # From the client namespace, through the gateway: tc + bpf_sk_assign.
    assert body_of(lab.curl(lab.client, SERVER4, 80)) == "server port 80"
    assert body_of(lab.curl(lab.client, SERVER6, 80)) == "server port 80"
    # From a process of the gateway in the cgroup: connect hooks.
    assert body_of(lab.curl(lab.gateway, SERVER4, 80, cgroup=steered)) == "server port 80"
    assert body_of(lab.curl(lab.gateway, SERVER6, 80, cgroup=steered)) == "server port 80"
    # Not steered: another port, and a process outside the cgroup.
    assert body_of(lab.curl(lab.client, SERVER4, 8080)) == "server port 8080"
    assert body_of(lab.curl(lab.gateway, SERVER4, 80, cgroup=cgroup_factory("outside"))) == "server port 80"

    assert wait_for(lambda: len(proxy.requests()) >= 4)
    seen = proxy.requests()
    upstreams = sorted(r["upstream"] for r in seen)
    want = sorted(["%s:80" % SERVER4, "[%s]:80" % SERVER6] * 2)
    assert upstreams == want, seen
    assert all(r["status"] == 200 and r["mode"] == "transparent" for r in seen), seen
    st = steer_stats(gw_sonic)
    assert st["assigned_listener"] >= 2 and st["redirected"] == 2 and st["orig_answered"] >= 2, st
    assert st["bypassed"] >= 2, st  # sonic's own upstream connects
