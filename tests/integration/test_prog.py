"""sonic prog load | unload | show against the real kernel (root)."""
import json
import os
import socket
import signal
import subprocess
import time

import pytest

import sonictest
from sonictest import Sonic


STEER_PROGRAMS = {"steer_tc", "steer_connect4", "steer_connect6", "steer_sockops", "steer_getsockopt"}


def wait_gone(prog_ids, seconds=5.0):
    """Programs are freed after their last reference drops (RCU): poll."""
    deadline = time.monotonic() + seconds
    while True:
        out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True).stdout
        alive = {p["id"] for p in json.loads(out)} & set(prog_ids)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


# accel's release program on each release path, and its program type.
RELEASE_PROGRAM = {"iterator": ("accel_release", "tracing"), "walk": ("accel_release_one", "sched_cls")}


def test_load_show_unload_leaves_bpffs_as_it_was(sonic, bpffs):
    sonictest.require_families("accel", "splice", "steer", "fw")
    before = sonictest.bpffs_tree()

    loaded = sonic.ok("prog", "load")
    assert loaded["changed"] is True
    accel, splice, steer, fw = loaded["families"]
    assert accel["name"] == "accel" and accel["status"] == "loaded"
    release, release_type = RELEASE_PROGRAM[accel["release_path"]]
    assert set(accel["programs"]) == {"accel_sockops", "accel_msg", release}
    assert splice["name"] == "splice" and splice["programs"] == ["splice_verdict"]
    assert set(splice["maps"]) == {"splice_socks", "splice_state", "splice_stats"}
    assert steer["name"] == "steer"
    assert set(steer["programs"]) == STEER_PROGRAMS
    assert fw["name"] == "fw" and fw["programs"] == ["fw_xdp"]
    assert {"fw_rules", "fw_blocklist", "fw_flows", "fw_buckets"} <= set(fw["maps"])
    # Whatever the kernel refused, a fallback stood in for it.
    assert all(r["fallback"] for r in loaded["refused"]), loaded["refused"]

    again = sonic.ok("prog", "load")
    assert again["changed"] is False
    assert [f["status"] for f in again["families"]] == ["already_loaded"] * 4

    shown = sonic.ok("prog", "show")
    assert [(f["name"], f["state"]) for f in shown["families"]] == [
        ("accel", "loaded"), ("splice", "loaded"), ("steer", "loaded"), ("fw", "loaded")]
    assert shown["families"][0]["release_path"] == accel["release_path"]
    progs = {p["name"]: p for p in shown["programs"]}
    assert set(progs) == {"accel_sockops", "accel_msg", release, "splice_verdict", "fw_xdp"} | STEER_PROGRAMS
    assert progs["fw_xdp"]["type"] == "xdp"
    assert progs["accel_sockops"]["type"] == "sock_ops"
    assert progs["accel_msg"]["type"] == "sk_msg"
    assert progs[release]["type"] == release_type
    assert progs["splice_verdict"]["type"] == "sk_skb"
    for p in progs.values():
        assert p["pinned"] == os.path.join(bpffs, "prog", p["name"])
        assert len(p["tag"]) == 16
    # accel attaches on enable and steer on `tproxy add`; splice's verdict is
    # attached to its own map at load, since the proxy only adds sockets.
    assert all(p["attached"] == [] for n, p in progs.items() if n != "splice_verdict")
    assert [a.split(",")[0] for a in progs["splice_verdict"]["attached"]] == [
        "map splice_socks (sk_skb_stream_verdict)"]
    ids = [p["id"] for p in progs.values()]

    text = sonic.run("prog", "show")
    assert text.code == 0 and "accel_sockops" in text.out and "sock_ops" in text.out

    unloaded = sonic.ok("prog", "unload")
    assert unloaded["changed"] is True
    assert sonictest.bpffs_tree() == before
    assert not wait_gone(ids), "programs still loaded after unload"


def test_unload_and_load_are_idempotent(sonic, bpffs):
    assert sonic.ok("prog", "unload")["changed"] is False
    assert sonic.ok("prog", "unload")["changed"] is False
    assert not os.path.exists(bpffs)
    assert sonic.ok("prog", "load")["changed"] is True
    assert sonic.ok("prog", "unload")["changed"] is True
    assert sonic.ok("prog", "unload")["changed"] is False


def test_show_reports_attach_points_and_run_counts(sonic, cgroup):
    sonictest.require_families("accel")
    sonic.ok("accel", "enable", "cgroup", cgroup)
    with open("/proc/sys/kernel/bpf_stats_enabled") as f:
        saved = f.read().strip()
    try:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write("1")
        report = sonictest.mover_report(sonictest.mover(cgroup, conns=2, bytes=65536))
        assert report["ok"]
        shown = sonic.ok("prog", "show")
        assert shown["bpf_stats_enabled"] is True
        progs = {p["name"]: p for p in shown["programs"]}
        assert any(a.startswith("cgroup %s (cgroup_sock_ops)" % cgroup) for a in progs["accel_sockops"]["attached"])
        assert any(a.startswith("map accel_socks (sk_msg_verdict)") for a in progs["accel_msg"]["attached"])
        assert progs["accel_msg"]["run_count"] > 0
        assert progs["accel_sockops"]["run_count"] > 0
    finally:
        with open("/proc/sys/kernel/bpf_stats_enabled", "w") as f:
            f.write(saved)
    shown = sonic.ok("prog", "show")
    assert (saved == "0") == (shown["programs"][0]["run_count"] is None)


def test_sigkill_during_load_leaves_nothing_unload_cannot_remove(sonic, bpffs):
    baseline = set(sonictest.kernel_programs("accel_"))
    for delay in (0.0, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.15):
        p = subprocess.Popen([sonictest.SONIC, "--bpffs", bpffs, "prog", "load"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        if delay in (0.03, 0.06):
            # A load after a killed one finishes the job.
            assert sonic.ok("prog", "load")["families"][0]["name"] == "accel"
            assert sonic.ok("prog", "load")["changed"] is False
        r = sonic.run("-j", "prog", "unload")
        assert r.code == 0, r
        assert not os.path.exists(bpffs), "left after unload (delay %.3f): %s" % (delay, sonictest.bpffs_tree(bpffs))
    deadline = time.monotonic() + 5
    while set(sonictest.kernel_programs("accel_")) - baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(sonictest.kernel_programs("accel_")) - baseline == set()


def test_pinned_objects_from_another_build_are_refused(sonic, bpffs):
    sonictest.require_families("accel")
    sonic.ok("prog", "load")
    meta = os.path.join(bpffs, "map", "accel_meta")
    subprocess.run(["bpftool", "map", "update", "pinned", meta, "key", "0", "0", "0", "0",
                    "value"] + ["0"] * 40, check=True)
    r = sonic.run("prog", "load")
    assert r.code == 3, r
    assert "another sonic build" in r.err
    assert "sonic prog unload" in r.err
    assert sonic.ok("prog", "unload")["changed"] is True


def test_kernel_rejection_is_exit_2_with_the_verifier_reason(bpffs):
    reject = Sonic(bpffs, binary=sonictest.REJECT)
    r = reject.run("prog", "load")
    assert r.code == 2, r
    assert r.err.startswith("Error: load reject programs: prog 'reject_sockops': BPF program load failed")
    assert "invalid bpf_context access off=4096" in r.err
    assert "run with -d" in r.err
    assert "BEGIN PROG LOAD LOG" not in r.err

    r = reject.run("-d", "prog", "load")
    assert r.code == 2
    assert "BEGIN PROG LOAD LOG" in r.err and "r0 = *(u32 *)(r1 +4096)" in r.err

    r = reject.run("-j", "prog", "load")
    assert r.code == 2
    err = r.error()
    assert err["exit_code"] == 2 and "invalid bpf_context access" in err["error"]
    assert not os.path.exists(os.path.join(bpffs, "prog", "reject_sockops"))


def test_missing_capabilities_are_named(sonic):
    r = sonic.run("prog", "load", prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    assert r.code == 3, r
    assert "missing capabilities CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON" in r.err
    assert "run sonic as root" in r.err

    # Root without CAP_BPF and CAP_PERFMON (and no CAP_SYS_ADMIN to stand in).
    r = sonic.run("-j", "accel", "enable", prefix=[
        "setpriv", "--inh-caps=-all", "--bounding-set=-bpf,-perfmon,-sys_admin"])
    assert r.code == 3, r
    assert r.error()["error"] == "accel enable: missing capabilities CAP_BPF, CAP_PERFMON"

    r = sonic.run("stats", prefix=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    assert r.code == 3 and "CAP_BPF" in r.err


def in_private_mounts(script):
    """Runs SCRIPT in a private mount namespace: what it mounts goes away
    with it."""
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-ec", script],
                          capture_output=True, text=True, timeout=120)


def test_bpffs_is_mounted_when_missing():
    name = sonictest.unique("mnt")
    r = in_private_mounts("""
        while mountpoint -q /sys/fs/bpf; do umount /sys/fs/bpf; done
        {sonic} -j --bpffs /sys/fs/bpf/{name} prog load > /dev/null
        stat -f -c %T /sys/fs/bpf
        {sonic} -j --bpffs /sys/fs/bpf/{name} prog unload
    """.format(sonic=sonictest.SONIC, name=name))
    assert r.returncode == 0, r
    lines = r.stdout.split("\n")
    assert lines[0] == "bpf_fs"
    assert json.loads(lines[1])["changed"] is True
    assert "mounted bpffs at /sys/fs/bpf" in r.stderr


def test_a_mount_namespace_of_its_own_is_warned_about():
    # ip netns exec mounts a fresh /sys: what sonic pins there vanishes with
    # it. Nothing is attached by prog load, so nothing outlives the command.
    ns = sonictest.unique("mntns")
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        r = subprocess.run(["ip", "netns", "exec", ns, sonictest.SONIC, "--bpffs",
                            "/sys/fs/bpf/" + sonictest.unique("mnt"), "prog", "load"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r
        assert "mounted bpffs at /sys/fs/bpf" in r.stderr
        assert "(ip netns exec?)" in r.stderr and "nsenter --net=/run/netns/NAME" in r.stderr
    finally:
        subprocess.run(["ip", "netns", "del", ns])


def test_bpffs_root_outside_sys_fs_bpf_gets_its_own_mount(tmp_path):
    sonictest.require_families("accel", "splice", "steer", "fw")
    root = str(tmp_path / "bpf")
    r = in_private_mounts("""
        {sonic} -q --bpffs {root} prog load
        stat -f -c %T {root}
        ls {root}/prog
        {sonic} -q --bpffs {root} prog unload
    """.format(sonic=sonictest.SONIC, root=root))
    assert r.returncode == 0, r
    listed = r.stdout.split()
    release = [p for p in listed if p in ("accel_release", "accel_release_one")]
    assert len(release) == 1, listed
    assert listed == (["bpf_fs", "accel_msg"] + release + ["accel_sockops", "fw_xdp", "splice_verdict"]
                      + sorted(STEER_PROGRAMS))


def test_unknown_object_or_verb_is_exit_1_with_usage(sonic):
    r = sonic.run("frobnicate")
    assert r.code == 1 and "unknown object 'frobnicate'" in r.err and "Usage: sonic" in r.err
    r = sonic.run("prog", "frob")
    assert r.code == 1 and "unknown verb 'frob'" in r.err and "Usage: sonic prog" in r.err
    r = sonic.run("-j", "accel", "frob")
    assert r.code == 1 and r.error() == {"error": "accel: unknown verb 'frob'", "exit_code": 1}
    for spelling in (["-jq"], ["-qj"], ["--json=true"]):
        r = sonic.run(*spelling, "accel", "frob")
        assert r.code == 1 and r.error() == {"error": "accel: unknown verb 'frob'", "exit_code": 1}, spelling


def test_a_refused_family_leaves_the_others_loaded(bpffs, cgroup):
    sonictest.require_families("splice", "steer", "fw")
    refused = Sonic(bpffs, env={"SONIC_BPF_REFUSE": "accel_msg"})
    r = refused.run("-j", "prog", "load")
    assert r.code == 0, r
    out = r.json()
    assert {f["name"]: f["status"] for f in out["families"]} == {
        "accel": "unavailable", "splice": "loaded", "steer": "loaded", "fw": "loaded"}
    accel = out["families"][0]
    assert accel["programs"] == [] and accel["maps"] == []
    assert "prog 'accel_msg'" in accel["reason"] and "SONIC_BPF_REFUSE" in accel["reason"]
    assert accel["hint"] == "the kernel refuses this program type (lockdown, LSM or a missing capability)"
    row = [x for x in out["refused"] if x["program"] == "accel_msg"]
    assert row and row[0]["family"] == "accel" and row[0]["type"] == "sk_msg" and row[0]["errno"] == "EPERM"
    assert row[0]["injected"] is True and row[0]["fallback"] is None
    assert "Warning: load accel programs: prog 'accel_msg'" in r.err
    assert not [p for p in os.listdir(os.path.join(bpffs, "prog")) if p.startswith("accel_")]
    assert not [m for m in os.listdir(os.path.join(bpffs, "map")) if m.startswith("accel_")]

    # Named on the command line, a family that cannot load is exit 2, with
    # the program, the errno's text and the hint.
    r = refused.run("prog", "load", "accel")
    assert r.code == 2, r
    assert r.err.startswith("Error: load accel programs: prog 'accel_msg': refused by SONIC_BPF_REFUSE")
    assert "Operation not permitted" in r.err and "Hint: the kernel refuses this program type" in r.err
    r = refused.run("-j", "prog", "load", "splice", "accel")
    assert r.code == 2 and r.error()["exit_code"] == 2
    assert [f["status"] for f in r.json()["families"]] == ["already_loaded", "unavailable"]

    # Its consumers say which family is missing.
    r = refused.run("accel", "enable", "cgroup", cgroup)
    assert r.code == 2 and "load accel programs" in r.err, r

    # splice and steer work while accel cannot load.
    assert refused.ok("prog", "load", "splice", "steer")["changed"] is False
    with socket.socket() as l:
        l.bind(("127.0.0.1", 0))
        l.listen()
        to = "127.0.0.1:%d" % l.getsockname()[1]
        added = refused.ok("tproxy", "add", "cgroup", cgroup, "proto", "tcp", "dport", "80", "to", to)
        assert added["changed"] is True
        assert len(refused.ok("tproxy", "list")["rules"]) == 1
        assert refused.ok("tproxy", "flush")["changed"] is True
    shown = refused.ok("prog", "show")
    assert [(f["name"], f["state"]) for f in shown["families"]] == [
        ("accel", "absent"), ("splice", "loaded"), ("steer", "loaded"), ("fw", "loaded")]


def test_refused_tracing_programs_fall_back_to_the_walk(bpffs, cgroup):
    walk = Sonic(bpffs, env={"SONIC_BPF_REFUSE": "accel_release"})
    out = walk.ok("prog", "load", "accel")
    assert out["families"][0]["status"] == "loaded" and out["families"][0]["release_path"] == "walk"
    assert out["families"][0]["programs"] == ["accel_sockops", "accel_msg", "accel_release_one"]
    row = out["refused"][0]
    assert (row["program"], row["type"], row["errno"], row["fallback"]) == (
        "accel_release", "tracing", "EPERM", "accel_release_one")
    assert row["hint"] == "the kernel refuses tracing programs (lockdown or LSM)"
    text = walk.run("prog", "show")
    assert text.code == 0 and "walk" in text.out
    assert walk.ok("accel", "enable", "cgroup", cgroup)["release_path"] == "walk"
    assert walk.ok("accel", "status")["release_path"] == "walk"

    # With no release path left, accel is unavailable and says why.
    none = Sonic(bpffs + "-none", env={"SONIC_BPF_REFUSE": "accel_release, accel_release_one"})
    try:
        r = none.run("-j", "prog", "load", "accel")
        assert r.code == 2
        assert "no alternative for release_path is left" in r.error()["error"]
    finally:
        sonictest.remove_bpffs_root(none.bpffs)


def test_family_names_are_checked(sonic, bpffs):
    r = sonic.run("prog", "load", "accel", "frob")
    assert r.code == 1 and "unknown family 'frob' (the families are accel, splice, steer, fw)" in r.err, r
    r = sonic.run("-j", "prog", "load", "splice", "splice")
    assert r.code == 1 and r.error()["error"] == "prog load: family 'splice' named twice"
    assert not os.path.exists(bpffs), "bad input left state behind"


def test_probe_names_every_family_and_what_the_kernel_allows(sonic, bpffs):
    before = sonictest.bpffs_tree()
    r = sonic.run("-j", "prog", "probe")
    assert r.code == 0, r
    probe = json.loads(r.out)
    assert [f["name"] for f in probe["families"]] == ["accel", "splice", "steer", "fw"]
    k = probe["kernel"]
    assert k["release"] == os.uname().release
    assert k["lockdown"] in ("none", "integrity", "confidentiality", "unknown")
    assert k["btf"] is os.path.exists("/sys/kernel/btf/vmlinux")
    assert k["cgroup2"] == sonictest.cgroup2_root()
    assert k["missing_capabilities"] == []
    programs = {p["name"]: p for p in probe["programs"]}
    assert {"accel_sockops", "accel_msg", "accel_release", "accel_release_one", "splice_verdict",
            "fw_xdp"} <= set(programs)
    assert programs["fw_xdp"]["type"] == "xdp"
    assert programs["accel_release"]["alternative_for"] == "release_path"
    assert programs["accel_release"]["type"] == "tracing"
    assert programs["accel_release_one"]["type"] == "sched_cls"
    points = {a["name"]: a for a in probe["attach_points"]}
    assert set(points) == {"cgroup_links", "sockmap_links", "tc_ingress", "sk_assign_reuseport", "xdp_generic",
                           "xdp_native"}
    assert points["cgroup_links"]["available"] is True and points["tc_ingress"]["available"] is True
    # Told by a real SYN in the probe's namespace: yes on 6.5 and later, no before.
    assert points["sk_assign_reuseport"]["available"] in (True, False), points["sk_assign_reuseport"]
    injected = Sonic(bpffs, env={"SONIC_BPF_REFUSE": "sk_assign_reuseport"}).ok("prog", "probe")
    row = {a["name"]: a for a in injected["attach_points"]}["sk_assign_reuseport"]
    assert row["available"] is False and "SONIC_BPF_REFUSE" in row["detail"], row
    assert any(h["helper"] == "bpf_msg_redirect_hash" and h["programs"] == ["accel_msg"] for h in probe["helpers"])

    # What probe predicts is what load does.
    loaded = sonic.ok("prog", "load")
    for f, p in zip(loaded["families"], probe["families"]):
        assert (f["status"] != "unavailable") == p["available"], (f, p)
        assert f.get("release_path") == p.get("release_path")
    sonic.ok("prog", "unload")
    refused = Sonic(bpffs, env={"SONIC_BPF_REFUSE": "accel_msg"}).ok("prog", "probe")
    accel = refused["families"][0]
    assert accel["available"] is False and "accel_msg" in accel["reason"]
    assert [x["loads"] for x in refused["programs"] if x["name"] == "accel_msg"] == [False]

    # It leaves nothing behind: no pins, no cgroup, no interface.
    assert sonictest.bpffs_tree() == before
    assert not [d for d in os.listdir(sonictest.cgroup2_root()) if d.startswith("sonic-probe-")]
    assert "sonicprobe" not in subprocess.run(["ip", "link"], capture_output=True, text=True).stdout


def test_probe_answers_without_bpffs_or_cgroup2():
    r = in_private_mounts("""
        while mountpoint -q /sys/fs/bpf; do umount /sys/fs/bpf; done
        grep cgroup2 /proc/self/mounts | cut -d' ' -f2 | while read m; do umount -l "$m"; done
        {sonic} -j --bpffs /sys/fs/bpf/{name} prog probe
    """.format(sonic=sonictest.SONIC, name=sonictest.unique("probe")))
    assert r.returncode == 0, r
    probe = json.loads(r.stdout)
    assert probe["kernel"]["bpffs"] is None and probe["kernel"]["cgroup2"] is None
    cg = [a for a in probe["attach_points"] if a["name"] == "cgroup_links"][0]
    assert cg["available"] is None and cg["detail"] == "no cgroup v2 mount"
    assert [f["name"] for f in probe["families"]] == ["accel", "splice", "steer", "fw"]
