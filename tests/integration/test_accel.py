"""sonic accel enable | disable | status and sonic stats, with real traffic
through real sockets in real cgroups (root)."""
import json
import os
import socket
import subprocess
import time

import pytest

import sonictest
from sonictest import delta, mover, mover_report, scaled, tcp_mem_pages, wait_for

MiB = 1 << 20


@pytest.fixture(params=sorted(sonictest.RELEASE_PATHS))
def sonic(request, bpffs):
    """sonic on one of accel's two release paths (the sockmap iterator, or the
    walk that stands in where the kernel refuses tracing programs): every test
    here runs on both. A path this kernel refuses is skipped, saying why."""
    why = sonictest.release_path_refusal(request.param)
    if why:
        pytest.skip("release path %s is refused by this kernel: %s" % (request.param, why))
    s = sonictest.Sonic(bpffs, env=sonictest.RELEASE_PATHS[request.param])
    s.release_path = request.param
    return s


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("family", ["4", "6", "dual"])
def test_64_connections_move_1mib_each_way_byte_identical(sonic, cgroup, family):
    enabled = sonic.ok("accel", "enable", "cgroup", cgroup)
    assert enabled["changed"] is True and enabled["cgroup"] == cgroup
    assert enabled["release_path"] == sonic.release_path
    before = sonic.stats()

    report = mover_report(mover(cgroup, conns=64, bytes=MiB, family=family))
    assert report["ok"], report

    d = delta(sonic.stats(), before)
    total = 2 * 64 * MiB
    assert d["inserted"] == 128, d
    assert d["insert_failed"] == 0 and d["skipped_remote"] == 0
    assert d["redirect_bytes"] + d["miss_bytes"] == total, d
    assert d["redirect_bytes"] >= 0.95 * total, d
    assert d["redirects"] >= 128
    # Closed sockets leave the map on their own.
    assert wait_for(lambda: sonic.stats()["sockets"] == 0)


def test_a_process_outside_the_cgroup_is_untouched(sonic, cgroup):
    sonic.ok("accel", "enable", "cgroup", cgroup)
    before = sonic.stats()
    outside = mover(None, conns=16, bytes=MiB)
    inside = mover(cgroup, conns=16, bytes=MiB)
    assert mover_report(outside)["ok"]
    assert mover_report(inside)["ok"]
    d = delta(sonic.stats(), before)
    # Only the 32 sockets of the inside process were seen at all.
    assert d["inserted"] == 32, d
    assert d["skipped_remote"] == 0 and d["skipped_port"] == 0
    assert d["redirect_bytes"] + d["miss_bytes"] == 2 * 16 * MiB, d


def test_disable_in_the_middle_of_a_transfer_loses_nothing(sonic, cgroup):
    assert sonic.ok("accel", "enable", "cgroup", cgroup)["release_path"] == sonic.release_path
    base = sonic.stats()
    # 8 connections x 24 MiB each way; readers pause 0.25 s after every
    # 4 MiB, so data sits unread in the sockets when disable runs.
    p = mover(cgroup, conns=8, bytes=24 * MiB, pause_every=4 * MiB, pause=scaled(0.25))
    # Before it sends a byte the mover draws and hashes 384 MiB of random
    # payload: seconds of CPU, many more on a busy machine.
    assert wait_for(lambda: sonic.stats()["redirect_bytes"] - base["redirect_bytes"] > 8 * MiB, seconds=60)

    disabled = sonic.ok("accel", "disable", "cgroup", cgroup, "--timeout", "10")
    assert disabled["changed"] is True and disabled["detached"] is True
    assert disabled["released_sockets"] == 16, disabled
    assert disabled["draining_sockets"] == 0
    at_disable = sonic.stats()
    assert at_disable["sockets"] == 0
    assert p.poll() is None, "transfer ended before disable: make it longer"

    report = mover_report(p)
    assert report["ok"], report
    after = sonic.stats()
    # Not one message was redirected after disable returned.
    assert after["redirects"] == at_disable["redirects"]
    assert after["redirect_bytes"] - base["redirect_bytes"] < 2 * 8 * 24 * MiB
    assert after["released"] - base["released"] == 16


def test_disable_reports_sockets_whose_reader_is_slow_and_releases_them_later(sonic, cgroup):
    sonic.ok("accel", "enable", "cgroup", cgroup)
    # Readers pause 2 s after the first 1 MiB: longer than the timeout.
    p = mover(cgroup, conns=4, bytes=4 * MiB, pause_every=MiB, pause=scaled(2), hold=scaled(3))
    assert wait_for(lambda: sonic.stats()["redirect_bytes"] > 4 * MiB)
    r = sonic.run("-j", "accel", "disable", "cgroup", cgroup, "--timeout", "0.3")
    assert r.code == 0, r
    first = r.json()
    assert first["draining_sockets"] > 0 and first["draining_bytes"] > 0, first
    assert "still hold redirected data" in r.err
    status = sonic.ok("accel", "status")
    assert status["enabled"] is False and status["draining_sockets"] == first["draining_sockets"]

    # Readers catch up; the sockets stay open (hold) and a second disable
    # hands them back.
    assert wait_for(lambda: sonic.ok("accel", "status")["draining_bytes"] == 0, seconds=20)
    second = sonic.ok("accel", "disable", "cgroup", cgroup)
    assert second["draining_sockets"] == 0
    assert second["released_sockets"] == first["draining_sockets"]
    assert second["changed"] is True
    assert mover_report(p)["ok"]
    assert sonic.ok("accel", "disable", "cgroup", cgroup)["changed"] is False


def test_unload_refuses_to_drop_unread_data(sonic, cgroup):
    sonic.ok("accel", "enable", "cgroup", cgroup)
    p = mover(cgroup, conns=2, bytes=4 * MiB, pause_every=MiB, pause=scaled(3))
    assert wait_for(lambda: sonic.stats()["redirect_bytes"] > 2 * MiB)
    r = sonic.run("prog", "unload", "--timeout", "0.2")
    assert r.code == 3, r
    assert "have not read" in r.err or "has not read" in r.err
    assert "--force" in r.err
    assert mover_report(p)["ok"]
    assert sonic.ok("prog", "unload")["changed"] is True


def test_repeating_enable_and_disable_change_nothing(sonic, cgroup):
    assert sonic.ok("accel", "disable", "cgroup", cgroup)["changed"] is False
    first = sonic.ok("accel", "enable", "cgroup", cgroup)
    assert first["changed"] is True and first["programs_loaded"] is True
    second = sonic.ok("accel", "enable", "cgroup", cgroup)
    assert second["changed"] is False and second["programs_loaded"] is False
    assert sonic.ok("accel", "disable", "cgroup", cgroup)["changed"] is True
    assert sonic.ok("accel", "disable", "cgroup", cgroup)["changed"] is False


def test_port_filter_accelerates_only_listed_server_ports(sonic, cgroup):
    port = free_port()
    other = free_port()
    enabled = sonic.ok("accel", "enable", "cgroup", cgroup, "ports", "%d,20000-20010" % port)
    assert enabled["ports"] == "%d,20000-20010" % port or enabled["ports"] == "20000-20010,%d" % port
    status = sonic.ok("accel", "status")
    assert [c["ports"] for c in status["cgroups"]] == [enabled["ports"]]

    before = sonic.stats()
    assert mover_report(mover(cgroup, conns=4, bytes=MiB, port=port))["ok"]
    d = delta(sonic.stats(), before)
    assert d["inserted"] == 8 and d["skipped_port"] == 0

    before = sonic.stats()
    assert mover_report(mover(cgroup, conns=4, bytes=MiB, port=other))["ok"]
    d = delta(sonic.stats(), before)
    assert d["inserted"] == 0 and d["skipped_port"] == 8 and d["redirects"] == 0

    # enable states the wanted filter: without ports, all ports again.
    assert sonic.ok("accel", "enable", "cgroup", cgroup)["changed"] is True
    assert sonic.ok("accel", "status")["cgroups"][0]["ports"] == "all"
    before = sonic.stats()
    assert mover_report(mover(cgroup, conns=4, bytes=MiB, port=other))["ok"]
    assert delta(sonic.stats(), before)["inserted"] == 8


def test_the_innermost_enabled_cgroup_decides(sonic, cgroup_factory):
    parent = cgroup_factory("parent")
    child = cgroup_factory("child", parent)
    port = free_port()
    sonic.ok("accel", "enable", "cgroup", parent)
    sonic.ok("accel", "enable", "cgroup", child, "ports", port + 1)
    status = sonic.ok("accel", "status")
    assert sorted(c["cgroup"] for c in status["cgroups"]) == sorted([parent, child])

    before = sonic.stats()
    assert mover_report(mover(child, conns=2, bytes=MiB, port=port))["ok"]
    d = delta(sonic.stats(), before)
    assert d["inserted"] == 0 and d["skipped_port"] == 4, d

    # With the child disabled, the parent's policy applies to it.
    sonic.ok("accel", "disable", "cgroup", child)
    before = sonic.stats()
    assert mover_report(mover(child, conns=2, bytes=MiB, port=port))["ok"]
    assert delta(sonic.stats(), before)["inserted"] == 4


def test_paths_that_are_not_cgroup_v2_directories_are_exit_3(sonic, cgroup, tmp_path):
    bad = [str(tmp_path), str(tmp_path / "missing"), os.path.join(cgroup, "cgroup.procs")]
    for v1 in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory"):
        with open("/proc/mounts") as f:
            if any(line.split()[1] == v1 and line.split()[2] == "cgroup" for line in f):
                bad.append(v1)
    for path in bad:
        r = sonic.run("-j", "accel", "enable", "cgroup", path)
        assert r.code == 3, (path, r)
        err = r.error()
        assert path in err["error"], err
        assert "cgroup v2" in err["error"] or "no such directory" in err["error"], err
    assert not os.path.exists(sonic.bpffs), "bad input left state behind"


def test_status_and_stats_speak_text_and_json(sonic, cgroup):
    r = sonic.run("-j", "stats")
    assert r.code == 3 and "no family is loaded" in r.error()["error"]
    r = sonic.run("-j", "stats", "accel")
    assert r.code == 3 and "accel is not loaded" in r.error()["error"]
    assert sonic.ok("accel", "status") == {
        "enabled": False, "loaded": False, "release_path": None, "msg_attached": False, "sockets": 0,
        "draining_sockets": 0, "draining_bytes": 0, "local_addresses": 0, "cgroups": [], "proxy_listeners": []}

    sonic.ok("accel", "enable", "cgroup", cgroup)
    status = sonic.ok("accel", "status")
    assert status["enabled"] and status["loaded"] and status["msg_attached"]
    assert status["release_path"] == sonic.release_path
    assert status["cgroups"][0]["cgroup"] == cgroup
    assert status["cgroups"][0]["cgroup_id"] == os.stat(cgroup).st_ino
    text = sonic.run("accel", "status")
    assert text.code == 0 and cgroup in text.out and "msg attached:" in text.out
    assert "release path: " + sonic.release_path in " ".join(text.out.split())

    p = mover(cgroup, conns=4, bytes=8 * MiB, pause_every=MiB, pause=0.1)
    r = sonic.run("-j", "stats", "accel", "--watch", "0.3", "--count", "3")
    assert r.code == 0, r
    samples = [json.loads(line) for line in r.out.splitlines()]
    assert len(samples) == 3
    assert all("time" in s and "accel" in s for s in samples)
    assert "accel_per_second" not in samples[0] and "accel_per_second" in samples[2]
    assert samples[2]["accel"]["redirect_bytes"] >= samples[0]["accel"]["redirect_bytes"]
    assert mover_report(p)["ok"]
    text = sonic.run("stats")
    assert text.code == 0 and "redirect bytes:" in text.out


def test_watch_stops_on_sigint(sonic, cgroup):
    sonic.ok("accel", "enable", "cgroup", cgroup)
    p = subprocess.Popen([sonictest.SONIC, "--bpffs", sonic.bpffs, "-j", "stats", "--watch", "0.2"],
                         stdout=subprocess.PIPE, text=True)
    # The first sample says sonic is up and watching (its SIGINT handler
    # is in place); then a few more.
    first = p.stdout.readline()
    time.sleep(0.5)
    p.send_signal(2)
    out, _ = p.communicate(timeout=scaled(5))
    assert p.returncode == 0
    assert first.strip() and len(out.splitlines()) >= 1




def peak_tcp_mem_mib(p):
    """Peak growth of the host's TCP memory while P runs, in MiB."""
    base = peak = tcp_mem_pages()
    while p.poll() is None:
        peak = max(peak, tcp_mem_pages())
        time.sleep(0.01)
    return (peak - base) * 4096 / MiB


def test_a_stalled_reader_bounds_the_queue_and_loses_nothing(sonic, cgroup):
    # Writers push 64 MiB each way; every reader sleeps 1 s after 32 MiB.
    # Without flow control each direction would queue the rest of its data as
    # redirected messages (8 directions: ~256 MiB, charged to TCP memory that
    # nothing bounds); with it a direction overflows to the stack at
    # SONIC_ACCEL_QUEUE_LIMIT (4 MiB) and TCP's window stops the writer. The
    # request/echo rounds afterwards bring every direction back.
    load = dict(conns=4, bytes=64 * MiB, pause_every=32 * MiB, pause=1.0, pingpong=20)
    plain = mover(cgroup, **load)
    plain_mib = peak_tcp_mem_mib(plain)
    assert mover_report(plain)["ok"]

    sonic.ok("accel", "enable", "cgroup", cgroup)
    before = sonic.ok("stats", "accel")["accel"]
    p = mover(cgroup, **load)
    accel_mib = peak_tcp_mem_mib(p)
    report = mover_report(p)
    assert report["ok"], report
    d = delta(sonic.ok("stats", "accel")["accel"], before)
    assert d["overflows"] >= 8 and d["resumed"] >= 8, d
    assert d["passed_overflow_bytes"] > 0 and d["redirect_bytes"] > 0, d
    assert d["redirect_bytes"] + d["passed_overflow_bytes"] >= 2 * 4 * 64 * MiB, d
    # The queue adds at most 4 MiB per direction to what the stack holds.
    assert accel_mib < plain_mib + 8 * 4 + 16, "TCP memory: %.0f MiB accelerated, %.0f MiB plain" % (
        accel_mib, plain_mib)


def test_a_removed_cgroup_is_disabled_by_its_old_path(sonic, cgroup_factory):
    gone = cgroup_factory("gone")
    kept = cgroup_factory("kept")
    sonic.ok("accel", "enable", "cgroup", gone)
    sonic.ok("accel", "enable", "cgroup", kept)
    gone_id = os.stat(gone).st_ino
    os.rmdir(gone)
    cgroups = {c["cgroup_id"]: c["cgroup"] for c in sonic.ok("accel", "status")["cgroups"]}
    assert cgroups == {gone_id: None, os.stat(kept).st_ino: kept}

    r = sonic.ok("accel", "disable", "cgroup", gone)
    assert r["changed"] and r["detached"] and r["removed_cgroup_ids"] == [gone_id], r
    assert [c["cgroup"] for c in sonic.ok("accel", "status")["cgroups"]] == [kept]
    # Nothing removed is left: the old path is just a missing directory now.
    assert sonic.run("accel", "disable", "cgroup", gone).code == 3
    assert sonic.ok("accel", "disable", "cgroup", kept)["removed_cgroup_ids"] == []
