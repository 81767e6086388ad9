"""sonic apply against real kernel objects (root): a veth lab for fw and
steering (tests/lib/fw_lab.py), a cgroup for accel and cgroup steering, a
bpffs root and a state directory of the test's own.

The first apply makes everything, a second one nothing; --check changes
nothing; --prune removes what the file stopped naming; a bad file exits 1
naming its line, before any change."""
import os

import pytest

import sonictest
from fw_lab import Lab


@pytest.fixture
def lab():
    lab = Lab()
    yield lab
    lab.close()


@pytest.fixture
def env(lab, bpffs, cgroup, tmp_path):
    # The state files here hold accel ports, tproxy rules and fw rules.
    sonictest.require_families("accel", "steer", "fw")
    class Env:
        pass
    e = Env()
    e.lab, e.cgroup, e.tmp = lab, cgroup, tmp_path
    e.state = str(tmp_path / "state")
    e.sonic = lab.sonic(bpffs)
    e.file = tmp_path / "apply.toml"
    return e


def state_file(e, fw_rules=True, accel_ports="[5432]"):
    text = """
[ca]
key_type = "ecdsa-p256"

[accel]
scope = "all"
cgroups = ["{cg}"]
ports = {ports}

[[fw_attach]]
dev = "{dev}"

[[tproxy]]
dev = "{dev}"
proto = "tcp"
dport = [80, 443]
to = "127.0.0.1:15001"

[[tproxy]]
cgroup = "{cg}"
proto = "tcp"
dport = 8080
to = "127.0.0.1:15002"
""".format(cg=e.cgroup, dev=e.lab.dev, ports=accel_ports)
    if fw_rules:
        text += """
[[fw]]
dev = "{dev}"
action = "drop"
src = "10.77.0.64/26"

[[fw]]
dev = "all"
action = "limit"
rate = "10/m"
burst = 5
proto = "tcp"
dport = 22
tcp_flags = "syn"
""".format(dev=e.lab.dev)
    e.file.write_text(text)
    return str(e.file)


def apply(e, *flags):
    return e.sonic.run("-j", "--state-dir", e.state, "apply", "-f", str(e.file), *flags)


def applied(e, *flags):
    r = apply(e, *flags)
    assert r.code == 0, r
    return r.json()


def kernel_state(e):
    """What the kernel and the state directory hold, as the verbs list it."""
    fw = e.sonic.ok("fw", "list")
    return {
        "fw_rules": sorted(r["dev"] + " " + r["action"] + " " + r["src"] for r in fw["rules"]),
        "fw_attached": sorted(a["dev"] for a in fw.get("attachments", [])),
        "tproxy": sorted(r["dport"] + " " + r["to"] for r in e.sonic.ok("tproxy", "list")["rules"]),
        "accel": sorted((c["cgroup"], c["ports"]) for c in e.sonic.ok("accel", "status")["cgroups"]),
        "ca": os.path.exists(os.path.join(e.state, "ca", "ca.pem")),
    }


def test_check_changes_nothing_then_apply_converges_and_repeats_as_a_no_op(env):
    state_file(env)
    before = sorted(os.listdir(env.sonic.bpffs)) if os.path.exists(env.sonic.bpffs) else []

    check = applied(env, "--check")
    assert check["check"] is True and check["changed"] is True
    assert [a["action"] for a in check["actions"]] == [
        "ca init", "accel enable", "fw attach", "fw add", "fw add", "tproxy add", "tproxy add"], check
    after_check = sorted(os.listdir(env.sonic.bpffs)) if os.path.exists(env.sonic.bpffs) else []
    assert after_check == before, "--check loaded or pinned something"
    assert not os.path.exists(env.state)

    first = applied(env)
    assert first["changed"] is True and len(first["actions"]) == 7, first
    k = kernel_state(env)
    assert k["fw_rules"] == ["all limit any", env.lab.dev + " drop 10.77.0.64/26"], k
    assert k["fw_attached"] == [env.lab.dev], k
    assert k["tproxy"] == ["80,443 127.0.0.1:15001", "8080 127.0.0.1:15002"], k
    assert k["accel"] == [(env.cgroup, "5432")], k
    assert k["ca"], os.listdir(env.state)

    second = applied(env)
    assert second["changed"] is False and second["actions"] == [], second
    again = applied(env, "--check", "--prune")
    assert again["changed"] is False and again["actions"] == [], again
    assert kernel_state(env) == k


def test_diff_prints_one_line_per_action(env):
    state_file(env)
    r = env.sonic.run("--state-dir", env.state, "apply", "-f", str(env.file), "--check", "--diff")
    assert r.code == 0, r
    lines = [l for l in r.out.splitlines() if l.startswith(("+ ", "- "))]
    assert len(lines) == 7, r.out
    assert any(l.startswith("+ sonic fw attach dev " + env.lab.dev) for l in lines), lines


def test_a_changed_file_changes_only_the_difference_and_prune_removes_the_rest(env):
    state_file(env)
    applied(env)
    state_file(env, fw_rules=False, accel_ports="[5432, 6379]")

    plain = applied(env)
    assert [a["action"] for a in plain["actions"]] == ["accel enable"], plain
    assert plain["actions"][0]["why"] == "ports differ"
    k = kernel_state(env)
    assert k["accel"] == [(env.cgroup, "5432,6379")]
    assert len(k["fw_rules"]) == 2, "without --prune the rules the file dropped stay"

    diff = env.sonic.run("-j", "--state-dir", env.state, "apply", "-f", str(env.file), "--prune", "--diff")
    assert diff.code == 0, diff
    pruned = diff.json()
    assert sorted(a["action"] for a in pruned["actions"]) == ["fw del", "fw del"], pruned
    assert all(a["why"] == "not in the file" for a in pruned["actions"])
    assert diff.err.count("- sonic fw del ") == 2, diff.err  # with -j the diff goes to stderr
    assert kernel_state(env)["fw_rules"] == []
    assert applied(env, "--prune")["changed"] is False


def test_prune_with_an_empty_file_removes_everything_sonic_manages_but_the_ca(env):
    state_file(env)
    applied(env)
    env.file.write_text("# nothing\n")
    assert applied(env)["changed"] is False, "an empty file without --prune touches nothing"
    out = applied(env, "--prune")
    assert sorted(a["action"] for a in out["actions"]) == [
        "accel disable", "fw del", "fw del", "fw detach", "tproxy del", "tproxy del"], out
    k = kernel_state(env)
    assert k["fw_rules"] == [] and k["fw_attached"] == [] and k["tproxy"] == [] and k["accel"] == []
    assert k["ca"], "the CA is never removed"


@pytest.mark.parametrize("bad, where, says", [
    ('[accel]\ncgroups = ["/sys/fs/cgroup/sonic-no-such-cgroup"]\n', ":2:", "no such cgroup"),
    ('[[fw_attach]]\ndev = "nosuchdev0"\n', ":1:", "no such interface"),
    ('[[fw]]\ndev = "all"\naction = "drop"\nsrc = "10.0.0.0/40"\n', ":4:", "10.0.0.0/40"),
    ('[[tproxy]]\ndev = "lo"\nproto = "tcp"\ndport = 99999\nto = "127.0.0.1:1"\n', ":4:", "99999"),
    ('[accel]\nports = [80]\nscope = "everything"\n', ":3:", "scope"),
])
def test_a_bad_file_exits_1_naming_the_line_and_changes_nothing(env, bad, where, says):
    # A good section first: nothing of it may be applied either.
    env.file.write_text('[[fw]]\ndev = "all"\naction = "drop"\nsrc = "192.0.2.0/24"\n\n' + bad)
    first_line = 6  # the bad part starts on line 6
    r = env.sonic.run("--state-dir", env.state, "apply", "-f", str(env.file))
    assert r.code == 1, r
    line = int(where.strip(":")) + first_line - 1
    assert "%s:%d:" % (env.file, line) in r.err, r.err
    assert says in r.err, r.err
    assert not os.path.exists(env.sonic.bpffs) or not os.listdir(env.sonic.bpffs), "a bad file changed something"


def test_a_missing_file_is_an_environment_error(env):
    r = env.sonic.run("apply", "-f", str(env.tmp / "absent.toml"))
    assert r.code == 3, r
    assert "absent.toml" in r.err


def test_a_failure_midway_reports_what_was_applied_and_a_rerun_converges(env):
    """The kernel refusing fw's program (SONIC_BPF_REFUSE: fault injection)
    stops apply at fw: the CA and accel before it stay applied, steering
    after it is reported as left, and the next run does only the rest."""
    state_file(env)
    argv = ["-j", "--state-dir", env.state, "apply", "-f", str(env.file)]
    refused = env.lab.sonic(env.sonic.bpffs, env={"SONIC_BPF_REFUSE": "fw_xdp"}).run(*argv)
    assert refused.code == 2, refused
    out = refused.json()
    assert out["changed"] is True
    assert [a["action"] for a in out["actions"]] == ["ca init", "accel enable"], out
    assert out["failed"]["action"] == "fw attach" and "fw_xdp" in out["error"], out
    assert [a["action"] for a in out["left"]] == ["fw add", "fw add", "tproxy add", "tproxy add"], out
    assert kernel_state(env)["accel"] == [(env.cgroup, "5432")]

    rest = applied(env)
    assert [a["action"] for a in rest["actions"]] == ["fw attach", "fw add", "fw add", "tproxy add", "tproxy add"]
    assert applied(env)["changed"] is False
