"""The steering lab: client, gateway and server namespaces joined by veth
pairs, the gateway forwarding IPv4 and IPv6 between them.

    client 10.10.1.2 fd10:1::2 --- 10.10.1.1 fd10:1::1 gateway
    gateway 10.10.2.1 fd10:2::1 --- 10.10.2.2 fd10:2::2 server

Names are unique per run; close() removes the namespaces (and with them the
veth pairs and everything inside). The server answers HTTP on SERVER_PORTS
with a body naming the port it was reached on.
"""
import json
import os
import shutil
import subprocess
import tempfile

import sonictest

CLIENT4, GW_C4, GW_S4, SERVER4 = "10.10.1.2", "10.10.1.1", "10.10.2.1", "10.10.2.2"
CLIENT6, GW_C6, GW_S6, SERVER6 = "fd10:1::2", "fd10:1::1", "fd10:2::1", "fd10:2::2"
SERVER_PORTS = (80, 8080)
LISTENER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tproxy_listener.py")

SERVER_SCRIPT = r"""
import http.server, socket, sys, threading
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ("server port %d\n" % self.server.server_address[1]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
servers = [S(("::", int(p)), H) for p in sys.argv[1:]]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
print("ready", flush=True)
servers[0].serve_forever()
"""


def sh(*argv):
    subprocess.run([str(a) for a in argv], check=True, capture_output=True)


def nsexec(ns, argv):
    # nsenter --net keeps the mount namespace: bpffs and cgroupfs stay visible.
    return ["nsenter", "--net=/run/netns/" + ns] + [str(a) for a in argv]


class Lab:
    def __init__(self):
        tag = sonictest.unique("")[-6:]
        self.client = "sonic-steer-c-" + tag
        self.gateway = "sonic-steer-g-" + tag
        self.server = "sonic-steer-s-" + tag
        self.gw_client_dev = "sgc" + tag  # gateway side, facing the client
        self.gw_server_dev = "sgs" + tag
        self.procs = []
        self.made = []
        try:
            self._build()
        except Exception:
            self.close()
            raise

    def _build(self):
        for ns in (self.client, self.gateway, self.server):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", "c0" + self.gw_client_dev, "netns", self.client, "type", "veth",
           "peer", "name", self.gw_client_dev, "netns", self.gateway)
        sh("ip", "link", "add", "s0" + self.gw_server_dev, "netns", self.server, "type", "veth",
           "peer", "name", self.gw_server_dev, "netns", self.gateway)
        cdev, sdev = "c0" + self.gw_client_dev, "s0" + self.gw_server_dev
        for ns, dev, a4, a6 in ((self.client, cdev, CLIENT4, CLIENT6),
                                (self.gateway, self.gw_client_dev, GW_C4, GW_C6),
                                (self.gateway, self.gw_server_dev, GW_S4, GW_S6),
                                (self.server, sdev, SERVER4, SERVER6)):
            sh("ip", "-n", ns, "addr", "add", a4 + "/24", "dev", dev)
            sh("ip", "-n", ns, "addr", "add", a6 + "/64", "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", self.client, "route", "add", "default", "via", GW_C4)
        sh("ip", "-n", self.client, "-6", "route", "add", "default", "via", GW_C6)
        sh("ip", "-n", self.server, "route", "add", "default", "via", GW_S4)
        sh("ip", "-n", self.server, "-6", "route", "add", "default", "via", GW_S6)
        sh(*nsexec(self.gateway, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
        sh(*nsexec(self.gateway, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]))
        # Reverse-path filtering of the local route table must not drop
        # steered packets.
        sh(*nsexec(self.gateway, ["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]))

    def start_server(self, ports=SERVER_PORTS):
        p = self.spawn(self.server, [sonictest.PYTHON, "-c", SERVER_SCRIPT] + list(ports))
        assert p.stdout.readline().strip() == "ready"
        return p

    def spawn(self, ns, argv, cgroup=None):
        p = sonictest.spawn(nsexec(ns, argv), cgroup, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def run(self, ns, argv, cgroup=None, timeout=30):
        p = sonictest.spawn(nsexec(ns, argv), cgroup, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = p.communicate(timeout=sonictest.scaled(timeout))
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        return p.returncode, out, err

    def curl(self, ns, host, port, cgroup=None, timeout=5):
        url = "http://%s:%d/" % ("[%s]" % host if ":" in host else host, port)
        t = sonictest.scaled(timeout)
        return self.run(ns, ["curl", "-sS", "--max-time", t, "--connect-timeout", t, url],
                        cgroup=cgroup, timeout=timeout + 10)

    def close(self):
        sonictest.close_netns_lab(self.procs, self.made)


class PythonListener:
    """tests/lib/tproxy_listener.py in namespace NS, listening on ADDRS."""

    def __init__(self, lab, ns, addrs, cgroup=None):
        fd, self.log_path = tempfile.mkstemp(prefix="sonic-steer-listener-", suffix=".jsonl")
        os.close(fd)
        argv = [sonictest.PYTHON, LISTENER, "--log", self.log_path]
        for a in addrs:
            argv += ["--listen", a]
        self.proc = lab.spawn(ns, argv, cgroup=cgroup)
        line = self.proc.stdout.readline().strip()
        assert line == "ready", "listener did not start: %s %s" % (line, self.proc.stderr.read())

    def connections(self):
        with open(self.log_path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        try:
            os.unlink(self.log_path)
        except FileNotFoundError:
            pass


class SonicListener:
    """`sonic run` with transparent listeners on ADDRS in namespace NS,
    logging every request as a JSON line."""

    def __init__(self, lab, ns, addrs, cgroup=None, bpffs=None, workers=1, env=()):
        self.ns, self.addrs = ns, addrs
        self.dir = tempfile.mkdtemp(prefix="sonic-steer-run-")
        self.log_path = os.path.join(self.dir, "access.jsonl")
        conf = ["workers = %d" % workers]
        for a in addrs:
            conf += ["[[listener]]", 'address = "%s"' % a, 'mode = "transparent"']  # tproxy: on by default
        conf += ["[access_log]", 'path = "%s"' % self.log_path]
        path = os.path.join(self.dir, "sonic.toml")
        with open(path, "w") as f:
            f.write("\n".join(conf) + "\n")
        argv = ["env"] + list(env) + [sonictest.SONIC]
        if bpffs:
            argv += ["--bpffs", bpffs]
        self.proc = lab.spawn(ns, argv + ["run", "--config", path], cgroup=cgroup)
        ok = wait_for(lambda: self.proc.poll() is not None or all(
            subprocess.run(nsexec(ns, ["ss", "-Hltn", "sport", "=", ":" + a.rsplit(":", 1)[1]]),
                           capture_output=True, text=True).stdout.strip() for a in addrs))
        assert ok and self.proc.poll() is None, "sonic run did not start: %s" % (
            self.proc.stderr.read() if self.proc.poll() is not None else "timeout")

    def listening_sockets(self, addr):
        """How many listening sockets (not descriptors) ADDR has."""
        out = subprocess.run(nsexec(self.ns, ["ss", "-Hltn", "src", addr]), capture_output=True, text=True).stdout
        return len([line for line in out.splitlines() if line.strip()])

    def requests(self):
        try:
            with open(self.log_path) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()
        shutil.rmtree(self.dir, ignore_errors=True)


wait_for = sonictest.wait_for
