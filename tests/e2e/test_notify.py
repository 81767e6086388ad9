"""sd_notify without systemd: the test is the service manager. It binds a
Unix datagram socket, hands its name to `sonic run` in NOTIFY_SOCKET (a
path, and an abstract "@name"), and checks READY=1 comes once the listener
accepts, RELOADING=1 then READY=1 around SIGHUP (also when the reload is
refused), and STOPPING=1 on SIGTERM."""
import os
import signal
import socket
import subprocess

import proxyrun
import sonictest


class Manager:
    """The receiving end of NOTIFY_SOCKET."""

    def __init__(self, tmp_path, abstract):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = sonictest.unique("sonic-notify")
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            path = str(tmp_path / "notify.sock")
            self.sock.bind(path)
            self.env_value = path
        self.sock.settimeout(15)

    def next(self):
        """The next message as a dict of its KEY=VALUE lines."""
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n") if line)

    def close(self):
        self.sock.close()


def start(tmp_path, manager, config):
    port = proxyrun.free_port()
    conf = tmp_path / "sonic.toml"
    conf.write_text(config % port)
    env = dict(os.environ, NOTIFY_SOCKET=manager.env_value)
    err = open(tmp_path / "stderr", "wb")
    proc = subprocess.Popen([sonictest.SONIC, "run", "--config", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=err, stdin=subprocess.DEVNULL, env=env)
    return proc, port, conf


CONFIG = '[[listener]]\naddress = "127.0.0.1:%d"\nmode = "forward"\n'


def run_protocol(tmp_path, abstract):
    manager = Manager(tmp_path, abstract)
    proc, port, conf = start(tmp_path, manager, CONFIG)
    try:
        ready = manager.next()
        assert ready.get("READY") == "1", ready
        assert ready.get("MAINPID") == str(proc.pid)
        assert "127.0.0.1:%d" % port in ready.get("STATUS", "")
        # Ready means listening: the first connection attempt succeeds.
        socket.create_connection(("127.0.0.1", port), timeout=2).close()

        proc.send_signal(signal.SIGHUP)
        reloading = manager.next()
        assert reloading.get("RELOADING") == "1", reloading
        assert int(reloading["MONOTONIC_USEC"]) > 0
        again = manager.next()
        assert again.get("READY") == "1", again
        assert "1 reloads" in again["STATUS"]

        # A bad config on SIGHUP is refused, and the manager still hears READY.
        conf.write_text("bogus = 1\n")
        proc.send_signal(signal.SIGHUP)
        assert manager.next().get("RELOADING") == "1"
        refused = manager.next()
        assert refused.get("READY") == "1" and "1 refused" in refused["STATUS"], refused
        socket.create_connection(("127.0.0.1", port), timeout=2).close()

        proc.send_signal(signal.SIGTERM)
        assert manager.next().get("STOPPING") == "1"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        manager.close()


def test_notify_socket_path(tmp_path):
    run_protocol(tmp_path, abstract=False)


def test_notify_abstract_socket(tmp_path):
    run_protocol(tmp_path, abstract=True)


def test_unreachable_notify_socket_is_not_fatal(tmp_path):
    port = proxyrun.free_port()
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "nobody-listens"))
    proc = subprocess.Popen([sonictest.SONIC, "run", "--listen", "127.0.0.1:%d" % port, "--mode", "forward"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env)
    try:
        proxyrun.wait_accepting(port, proc, 10, "sonic run")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert err.decode().count("sd_notify:") == 1, err.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
