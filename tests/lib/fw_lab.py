"""The firewall lab: a client namespace and a server namespace joined by one
veth pair; fw runs on the server's end.

    client 10.77.0.2 (and EXTRA4 addresses) fd77::2 (and EXTRA6)
        --- veth ---  server 10.77.0.1 fd77::1

Names are unique per run; close() removes both namespaces, and with them the
veth pair and everything in them. sonic runs in the server namespace with a
bpffs root of the test's own, and without the SSH variables of the shell the
tests run from (the SSH guard is tested on purpose, not by accident).
"""
import json
import os
import subprocess

import sonictest

CLIENT4, SERVER4 = "10.77.0.2", "10.77.0.1"
CLIENT6, SERVER6 = "fd77::2", "fd77::1"
TRAFFIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fw_traffic.py")
NO_SSH = {"SSH_CONNECTION": "", "SSH_CLIENT": ""}


def sh(*argv):
    subprocess.run([str(a) for a in argv], check=True, capture_output=True)


def nsexec(ns, argv):
    # nsenter --net keeps the mount namespace: bpffs stays visible.
    return ["nsenter", "--net=/run/netns/" + ns] + [str(a) for a in argv]


class NetnsSonic(sonictest.Sonic):
    """sonictest.Sonic whose every command runs in network namespace NS."""

    def __init__(self, ns, bpffs, env):
        super().__init__(bpffs, env=env)
        self.prefix = nsexec(ns, [])

    def run(self, *args, timeout=120, prefix=()):
        return super().run(*args, timeout=timeout, prefix=self.prefix)


class Lab:
    def __init__(self, extra4=(), extra6=()):
        tag = sonictest.unique("")[-6:]
        self.client = "sonic-fw-c-" + tag
        self.server = "sonic-fw-s-" + tag
        self.client_dev = "fwc" + tag
        self.dev = "fws" + tag  # the server's end, where fw runs
        self.procs = []
        self.made = []
        try:
            self._build(extra4, extra6)
        except Exception:
            self.close()
            raise

    def _build(self, extra4, extra6):
        for ns in (self.client, self.server):
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", self.client_dev, "netns", self.client, "type", "veth",
           "peer", "name", self.dev, "netns", self.server)
        for a in (CLIENT4,) + tuple(extra4):
            sh("ip", "-n", self.client, "addr", "add", a + "/24", "dev", self.client_dev)
        for a in (CLIENT6,) + tuple(extra6):
            sh("ip", "-n", self.client, "addr", "add", a + "/64", "dev", self.client_dev, "nodad")
        sh("ip", "-n", self.server, "addr", "add", SERVER4 + "/24", "dev", self.dev)
        sh("ip", "-n", self.server, "addr", "add", SERVER6 + "/64", "dev", self.dev, "nodad")
        sh("ip", "-n", self.client, "link", "set", self.client_dev, "up")
        sh("ip", "-n", self.server, "link", "set", self.dev, "up")
        # Static neighbours: no packet of a test waits on ARP or neighbour
        # discovery (whose first packets the kernel queues or drops).
        client_mac, server_mac = self.mac(self.client, self.client_dev), self.mac(self.server, self.dev)
        for a in (CLIENT4, CLIENT6) + tuple(extra4) + tuple(extra6):
            sh("ip", "-n", self.server, "neigh", "replace", a, "lladdr", client_mac, "dev", self.dev, "nud", "permanent")
        for a in (SERVER4, SERVER6):
            sh("ip", "-n", self.client, "neigh", "replace", a, "lladdr", server_mac, "dev", self.client_dev,
               "nud", "permanent")
        assert sonictest.wait_for(lambda: self.operstate(self.client, self.client_dev) == "UP" and
                                  self.operstate(self.server, self.dev) == "UP"), "veth pair not up"

    def link(self, ns, dev):
        return json.loads(subprocess.run(["ip", "-n", ns, "-j", "link", "show", "dev", dev], capture_output=True,
                                         text=True, check=True).stdout)[0]

    def mac(self, ns, dev):
        return self.link(ns, dev)["address"]

    def operstate(self, ns, dev):
        return self.link(ns, dev)["operstate"]

    def sonic(self, bpffs, env=None):
        """sonic in the server namespace, without the caller's SSH variables."""
        return NetnsSonic(self.server, bpffs, dict(NO_SSH, **(env or {})))

    def spawn(self, ns, argv, stdin=subprocess.DEVNULL):
        p = subprocess.Popen(nsexec(ns, argv), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        return p

    def run(self, ns, argv, timeout=60):
        p = self.spawn(ns, argv)
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, "%s failed (%d): %s" % (argv, p.returncode, err)
        return out

    def receiver(self, port, quiet=1.0):
        """A UDP counter in the server namespace; .result(), called once
        everything is sent, waits for QUIET seconds without a datagram and
        returns {source: count}."""
        # Scaled: under TCG the veth's softirq can deliver what was sent
        # more than a second after the senders are done.
        p = self.spawn(self.server, [sonictest.PYTHON, TRAFFIC, "recv", "--port", port,
                                     "--seconds", sonictest.scaled(quiet)],
                       stdin=subprocess.PIPE)
        assert p.stdout.readline().strip() == "ready", p.stderr.read()

        class Receiver:
            def result(self, timeout=120):
                out, err = p.communicate(timeout=sonictest.scaled(timeout))
                assert p.returncode == 0, err
                return json.loads(out)
        return Receiver()

    def send(self, src, dst, port, count, rate=0, size=32, sport=0, background=False):
        argv = [sonictest.PYTHON, TRAFFIC, "send", "--src", src, "--dst", dst, "--port", port,
                "--count", count, "--rate", rate, "--size", size, "--sport", sport]
        if background:
            return self.spawn(self.client, argv)
        return json.loads(self.run(self.client, argv))

    def connects(self, src, dst, port, timeout=2.0):
        argv = [sonictest.PYTHON, TRAFFIC, "connect", "--src", src, "--dst", dst, "--port", port,
                "--timeout", timeout]
        return json.loads(self.run(self.client, argv))["ok"]

    def listen_tcp(self, port):
        """A TCP listener on every address of the server namespace."""
        code = ("import socket,sys\n"
                "s=socket.socket(socket.AF_INET6);s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0)\n"
                "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('::',%d));s.listen(128)\n"
                "print('ready',flush=True)\n"
                "while True: s.accept()[0].close()\n" % port)
        p = self.spawn(self.server, [sonictest.PYTHON, "-c", code])
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        return p

    def link_state(self):
        """What an XDP attach may change on either end: `ip -d link` (without
        the counters) and `ethtool -k`."""
        state = {}
        for ns, dev in ((self.server, self.dev), (self.client, self.client_dev)):
            link = json.loads(subprocess.run(nsexec(ns, ["ip", "-d", "-j", "link", "show", "dev", dev]),
                                             capture_output=True, text=True, check=True).stdout)[0]
            link.pop("stats64", None)
            link.pop("stats", None)
            features = subprocess.run(nsexec(ns, ["ethtool", "-k", dev]), capture_output=True, text=True,
                                      check=True).stdout
            state[dev] = {"link": link, "features": features}
        return state

    def close(self):
        sonictest.close_netns_lab(self.procs, self.made)
