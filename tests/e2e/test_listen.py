"""One owner per address: a second `sonic run` on an address another
process listens on exits 3 and names that process; joining it takes
reuse_port = true or --reuse-port (a binary upgrade that overlaps), and
then the kernel splits new connections between the two."""
import re
import socket
import subprocess

import proxyrun
import sonicconf
import sonictest
from conftest import connect
from origin import read_response


def run_exit(args, timeout=20):
    return subprocess.run([sonictest.SONIC, "run"] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)


def joined(proxy):
    """Waits until PROXY says it listens: its port accepted before it
    started, through the process it joins."""
    assert sonictest.wait_for(lambda: "listening on" in proxy.stdout() or not proxy.alive()), proxy.stderr()
    assert proxy.alive(), proxy.stderr()
    return proxy


def served_by(port, origins, n=60):
    """Which of ORIGINS answered N requests on fresh connections."""
    before = [len(o.paths()) for o in origins]
    for i in range(n):
        s = connect(port)
        s.sendall(b"GET /echo?%d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" % i)
        status, _, _, _ = read_response(s)
        s.close()
        assert status == 200
    return [len(o.paths()) - b for o, b in zip(origins, before)]


def test_second_run_on_a_held_address_exits_3_naming_the_pid(sonic_run, origin):
    first = sonic_run.reverse(origin.address)
    r = run_exit(["--mode", "reverse", "--listen", "127.0.0.1:%d" % first.port, "--upstream", origin.address,
                  "--workers", 1])
    assert r.returncode == 3, r
    assert "in use by pid %d (sonic)" % first.pid in r.stderr, r.stderr
    assert "--reuse-port" in r.stderr, r.stderr  # the way to join on purpose
    assert first.alive()
    assert served_by(first.port, [origin], 5) == [5]


def test_held_admin_address_exits_3(sonic_run, origin, tmp_path):
    cfg = sonicconf.Config().reverse(origin.address).admin()
    first = sonic_run.config(cfg)
    second = sonicconf.Config().reverse(origin.address)
    second.admin_port = cfg.admin_port
    second.path = str(tmp_path / "second.toml")
    r = run_exit(["--config", second.write(None)])
    assert r.returncode == 3, r
    assert "127.0.0.1:%d" % cfg.admin_port in r.stderr and "pid %d (sonic)" % first.pid in r.stderr, r.stderr
    # Nothing of the second run was left listening on its own address.
    assert not proxyrun_listening(second.listen_port)


def proxyrun_listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def test_a_plain_server_is_named_too(origin):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        for extra in ([], ["--reuse-port"]):
            r = run_exit(["--mode", "reverse", "--listen", "127.0.0.1:%d" % port, "--upstream", origin.address,
                          "--workers", 1] + extra)
            assert r.returncode == 3, r
            assert re.search(r"in use by pid \d+ \(", r.stderr), r.stderr
    # A server without SO_REUSEPORT cannot be joined, --reuse-port or not:
    # the message says why rather than suggesting the flag again.
    assert "do not let others join" in r.stderr, r.stderr


def test_reuse_port_flag_joins_and_the_old_run_can_leave(sonic_run, origin_factory):
    old_origin, new_origin = origin_factory(), origin_factory()
    old = sonic_run.reverse(old_origin.address)
    new = joined(sonic_run.start(["--mode", "reverse", "--listen", "127.0.0.1:%d" % old.port,
                                  "--upstream", new_origin.address, "--workers", 1, "--reuse-port"], old.port))
    old_n, new_n = served_by(old.port, [old_origin, new_origin])
    assert old_n > 0 and new_n > 0, "the kernel should split connections: %d old, %d new" % (old_n, new_n)
    # The binary upgrade's second half: the old one drains and leaves.
    old.expected_exit = True
    assert old.stop() == 0
    assert served_by(old.port, [old_origin, new_origin], 20) == [0, 20]
    assert new.alive()


def test_reuse_port_in_the_config_joins(sonic_run, origin_factory, tmp_path):
    a, b = origin_factory(), origin_factory()
    cfg = sonicconf.Config().reverse(a.address).admin()
    sonic_run.config(cfg)
    second = sonicconf.Config().reverse(b.address).reuse_port()
    second.listen_port, second.admin_port = cfg.listen_port, cfg.admin_port
    second.path = str(tmp_path / "second.toml")
    joined(sonic_run.config(second))
    n_a, n_b = served_by(cfg.listen_port, [a, b])
    assert n_a > 0 and n_b > 0, (n_a, n_b)
