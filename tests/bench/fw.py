#!/usr/bin/python3
"""Edge firewall benchmark: sonic's XDP drop against nftables (netdev ingress
hook) and iptables (raw PREROUTING), in one run.

Topology: three network namespaces.

    sender 10.66.0.2 (legit), 10.66.0.66 (blocked)
       a0 --- m1  wire  m2 --- r0   receiver 10.66.0.1 (nginx :8080)

The wire (tests/bench/wire.bpf.c) passes every frame between m1 and m2 with
XDP_REDIRECT, so frames reach r0 the way a NIC hands them to its driver: as
XDP frames with no socket buffer. sonic drops them there; nftables and
iptables see them once the veth driver has built an skb. r0 uses threaded
NAPI, so everything the receiver does for a packet runs in one kernel thread
whose CPU time is read from /proc/PID/schedstat.

Part 1, CPU per dropped packet. tests/bench/flood.c sends minimum-size UDP
datagrams or TCP SYNs from 10.66.0.66 (AF_PACKET, sendmmsg, qdisc bypass)
as fast as it can; the filter of the row drops them on r0. The receiver's
thread runs at nice 19 on the sender's CPU, so it always finds its ring full
and polls full batches: its CPU time per drop is the per-packet cost, not the
cost of waking up. Rows: sonic (`fw block`), nftables, iptables, and an XDP
program that drops everything and does nothing else (the floor of this
harness: the veth driver's own cost per frame).

Part 2, legitimate traffic under a flood. wrk (sender namespace) asks nginx
(receiver) for a small page while the flood runs at --flood-pps; the sender
and the wire run on CPU 0 and the defended host (r0's thread, nginx, wrk) on
CPU 1, with and without a flood. A row with any non-2xx answer or socket
error is marked FAILED.

Rows of each part are interleaved run by run; medians are printed with the
ratios. Needs root. Every namespace, bpffs directory and process it makes is
removed on exit, also on failure or Ctrl-C; nothing outside the namespaces is
changed (no sysctl, no module).
"""
import argparse
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
SENDER, BLOCKED, SERVER = "10.66.0.2", "10.66.0.66", "10.66.0.1"
DROP_ROWS = ("sonic", "nftables", "iptables", "floor")
LEGIT_ROWS = ("no flood", "sonic", "nftables", "iptables", "no filter")


def sh(*argv, check=True, **kw):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(map(str, argv)), r.returncode, r.stderr.strip()))
    return r


def nsenter(ns, *argv):
    # nsenter --net keeps the mount namespace, and with it the bpffs.
    return ["nsenter", "--net=/run/netns/" + ns] + [str(a) for a in argv]


def sysfs(ns, path, value):
    """Writes a /sys/class/net file of namespace NS (ip netns exec mounts the
    namespace's own sysfs for the one command)."""
    sh("ip", "netns", "exec", ns, "sh", "-c", "echo %s > /sys/class/net/%s" % (value, path))


class Lab:
    def __init__(self, args):
        self.args = args
        tag = "%d%s" % (os.getpid() % 100000, secrets.token_hex(1))
        self.ns = {k: "sonic-fwb-%s-%s" % (k, tag) for k in ("snd", "wire", "rcv")}
        self.a0, self.m1, self.m2, self.r0 = ("fwa" + tag, "fwm" + tag, "fwn" + tag, "fwr" + tag)
        self.sonic = os.path.abspath(os.path.join(args.build, "sonic"))
        self.bpffs = "/sys/fs/bpf/sonic-fwb-%s" % tag
        self.wire_bpffs = "/sys/fs/bpf/sonic-fwb-wire-%s" % tag
        self.tmp = tempfile.mkdtemp(prefix="sonic-fw-bench-")
        self.procs = []
        self.made = []

    # ---- setup and teardown ------------------------------------------

    def build(self):
        for ns in self.ns.values():
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        snd, wire, rcv = self.ns["snd"], self.ns["wire"], self.ns["rcv"]
        sh("ip", "link", "add", self.a0, "netns", snd, "type", "veth", "peer", "name", self.m1, "netns", wire)
        sh("ip", "link", "add", self.m2, "netns", wire, "type", "veth", "peer", "name", self.r0, "netns", rcv)
        for addr in (SENDER, BLOCKED):
            sh("ip", "-n", snd, "addr", "add", addr + "/24", "dev", self.a0)
        sh("ip", "-n", rcv, "addr", "add", SERVER + "/24", "dev", self.r0)
        for ns, dev in ((snd, self.a0), (wire, self.m1), (wire, self.m2), (rcv, self.r0)):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        self.a0_mac, self.r0_mac = self.link(snd, self.a0)["address"], self.link(rcv, self.r0)["address"]
        # One Ethernet segment across the wire: static neighbours.
        sh("ip", "-n", snd, "neigh", "replace", SERVER, "lladdr", self.r0_mac, "dev", self.a0, "nud", "permanent")
        for addr in (SENDER, BLOCKED):
            sh("ip", "-n", rcv, "neigh", "replace", addr, "lladdr", self.a0_mac, "dev", self.r0, "nud", "permanent")
        self.build_wire()
        # NAPI on r0 without an XDP program (GRO on), threaded, so the
        # receiver's work for every row runs in one kernel thread.
        sh("ip", "netns", "exec", rcv, "ethtool", "-K", self.r0, "gro", "on")
        # A veth takes redirected frames only with NAPI: the sender's end too.
        sh("ip", "netns", "exec", snd, "ethtool", "-K", self.a0, "gro", "on")
        # Checksums computed by the stack: an XDP frame carries no "the
        # checksum is still to be filled in" (a NIC would fill it in).
        sh("ip", "netns", "exec", snd, "ethtool", "-K", self.a0, "tx", "off")
        sh("ip", "netns", "exec", rcv, "ethtool", "-K", self.r0, "tx", "off")
        sysfs(rcv, self.r0 + "/threaded", 1)
        if self.args.coalesce_us:
            # Interrupt coalescing, as a NIC does it: NAPI polls again after
            # the timeout instead of being woken per frame batch.
            sysfs(rcv, self.r0 + "/gro_flush_timeout", self.args.coalesce_us * 1000)
            sysfs(rcv, self.r0 + "/napi_defer_hard_irqs", 100)
        for dev in (self.m1, self.m2):
            sysfs(wire, dev + "/threaded", 1)
        self.flood_bin = os.path.join(self.tmp, "flood")
        sh("gcc", "-O2", "-Wall", "-o", self.flood_bin, os.path.join(HERE, "flood.c"))
        self.floor_obj = os.path.join(self.tmp, "floor.bpf.o")
        with open(os.path.join(self.tmp, "floor.bpf.c"), "w") as f:
            f.write("#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n"
                    "char LICENSE[] SEC(\"license\") = \"GPL\";\n"
                    "SEC(\"xdp\") int floor_drop(struct xdp_md *ctx) { return XDP_DROP; }\n")
        self.clang(os.path.join(self.tmp, "floor.bpf.c"), self.floor_obj)
        sh(*nsenter(rcv, self.sonic, "--bpffs", self.bpffs, "-q", "prog", "load", "fw"))
        self.start_nginx()

    def clang(self, src, obj):
        multiarch = sh("gcc", "-print-multiarch").stdout.strip()
        sh("clang", "-O2", "-g", "-target", "bpf", "-idirafter", "/usr/include/" + multiarch, "-c", src, "-o", obj)

    def build_wire(self):
        wire = self.ns["wire"]
        obj = os.path.join(self.tmp, "wire.bpf.o")
        self.clang(os.path.join(HERE, "wire.bpf.c"), obj)
        os.makedirs(self.wire_bpffs)
        sh("bpftool", "prog", "loadall", obj, self.wire_bpffs + "/prog", "pinmaps", self.wire_bpffs + "/map")
        m1, m2 = self.link(wire, self.m1)["ifindex"], self.link(wire, self.m2)["ifindex"]
        le = lambda v: [str(b) for b in v.to_bytes(4, "little")]  # noqa: E731
        for k, v in ((m1, m2), (m2, m1)):
            # Devmap entries name interfaces of the updating process's netns.
            sh(*nsenter(wire, "bpftool", "map", "update", "pinned", self.wire_bpffs + "/map/wire_peer",
                        "key", *le(k), "value", *le(v)))
        for dev in (self.m1, self.m2):
            sh(*nsenter(wire, "ip", "link", "set", "dev", dev, "xdpdrv", "pinned", self.wire_bpffs + "/prog/wire"))

    def start_nginx(self):
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write("daemon off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/nginx.err;\n"
                    "events { worker_connections 1024; }\nhttp { access_log off; server { listen %s:8080 "
                    "backlog=1024; location / { return 200 \"ok\\n\"; } } }\n" % (self.tmp, self.tmp, SERVER))
        p = self.spawn(nsenter(self.ns["rcv"], "taskset", "-c", 1, "nginx", "-c", conf, "-p", self.tmp),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while sh(*nsenter(self.ns["rcv"], "ss", "-Hltn", "sport", "=", ":8080")).stdout.strip() == "":
            if p.poll() is not None or time.time() > deadline:
                raise RuntimeError("nginx did not start")
            time.sleep(0.05)

    def spawn(self, argv, **kw):
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        p = subprocess.Popen([str(a) for a in argv], text=True, **kw)
        self.procs.append(p)
        return p

    def close(self):
        # What runs in the namespaces first: a process it left (nginx's
        # worker) holds the pipes of the one we started.
        for ns in self.made:
            for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        subprocess.run([self.sonic, "--bpffs", self.bpffs, "-q", "prog", "unload", "--force"], capture_output=True)
        shutil.rmtree(self.bpffs, ignore_errors=True)
        for ns in self.made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(self.wire_bpffs, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def link(self, ns, dev):
        return json.loads(sh("ip", "-n", ns, "-j", "link", "show", "dev", dev).stdout)[0]

    # ---- the filters ----------------------------------------------------

    def fw(self, *args):
        return sh(*nsenter(self.ns["rcv"], self.sonic, "--bpffs", self.bpffs, "-j", *args)).stdout

    def filter_on(self, row):
        rcv = self.ns["rcv"]
        if row == "sonic":
            self.fw("fw", "attach", "dev", self.r0, "mode", "native")
            self.fw("fw", "block", BLOCKED, "reason", "bench")
        elif row == "nftables":
            nft = ("table netdev sonic_bench {\n chain flood {\n  type filter hook ingress device %s priority -500;\n"
                   "  ip saddr %s counter drop\n }\n}\n" % (self.r0, BLOCKED))
            sh(*nsenter(rcv, "nft", "-f", "-"), input=nft)
        elif row == "iptables":
            sh(*nsenter(rcv, "iptables", "-t", "raw", "-A", "PREROUTING", "-s", BLOCKED, "-j", "DROP"))
        elif row == "floor":
            sh("bpftool", "prog", "load", self.floor_obj, self.wire_bpffs + "/floor")
            sh(*nsenter(rcv, "ip", "link", "set", "dev", self.r0, "xdpdrv", "pinned", self.wire_bpffs + "/floor"))

    def filter_off(self, row):
        rcv = self.ns["rcv"]
        if row == "sonic":
            self.fw("fw", "unblock", BLOCKED)
            self.fw("fw", "detach", "dev", self.r0)
        elif row == "nftables":
            sh(*nsenter(rcv, "nft", "delete", "table", "netdev", "sonic_bench"))
        elif row == "iptables":
            sh(*nsenter(rcv, "iptables", "-t", "raw", "-F", "PREROUTING"))
        elif row == "floor":
            sh(*nsenter(rcv, "ip", "link", "set", "dev", self.r0, "xdpdrv", "off"))
            os.unlink(self.wire_bpffs + "/floor")

    def drops(self, row):
        rcv = self.ns["rcv"]
        if row == "sonic":
            return json.loads(self.fw("stats", "fw"))["fw"]["dropped_blocklist"]
        if row == "nftables":
            rules = json.loads(sh(*nsenter(rcv, "nft", "-j", "list", "table", "netdev", "sonic_bench")).stdout)
            return sum(e["counter"]["packets"] for item in rules["nftables"] if "rule" in item
                       for e in item["rule"]["expr"] if "counter" in e)
        if row == "iptables":
            out = sh(*nsenter(rcv, "iptables", "-t", "raw", "-L", "PREROUTING", "-v", "-x", "-n")).stdout
            return int(out.splitlines()[2].split()[0])
        stats = sh("ip", "netns", "exec", rcv, "ethtool", "-S", self.r0).stdout
        return sum(int(m) for m in re.findall(r"xdp_drops: (\d+)", stats))

    # ---- threads ----------------------------------------------------------

    def napi_threads(self, dev):
        out = sh("ps", "-eLo", "tid,comm").stdout.split("\n")[1:]
        return [int(line.split()[0]) for line in out if line.split()[1:2] and
                line.split()[1].startswith("napi/" + dev[:10])]

    def place(self, receiver_cpu, receiver_nice):
        for dev in (self.m1, self.m2):
            for tid in self.napi_threads(dev):
                sh("taskset", "-p", "-c", 0, tid)
        tids = self.napi_threads(self.r0)
        if len(tids) != 1:
            raise RuntimeError("expected one NAPI thread of %s, found %s" % (self.r0, tids))
        sh("taskset", "-p", "-c", receiver_cpu, tids[0])
        sh("renice", "-n", receiver_nice, "-p", tids[0])
        return tids[0]

    def flood(self, proto, seconds, pps=0):
        return nsenter(self.ns["snd"], "taskset", "-c", 0, self.flood_bin, self.a0, self.r0_mac, self.a0_mac,
                       BLOCKED, SERVER, proto, seconds, pps)

    # ---- part 1 -------------------------------------------------------

    def drop_run(self, row, proto):
        """One flood at full speed through ROW's filter: (drops, receiver ns)."""
        self.filter_on(row)
        try:
            tid = self.place(0, 19)
            d0, c0 = self.drops(row), schedstat(tid)
            out = sh(*self.flood(proto, self.args.seconds)).stdout
            d1, c1 = self.drops(row), schedstat(tid)
            sent = int(out.split()[1])
            return {"drops": d1 - d0, "cpu_ns": c1 - c0, "sent": sent}
        finally:
            self.filter_off(row)

    # ---- part 2 -------------------------------------------------------

    def wrk(self):
        argv = nsenter(self.ns["snd"], "taskset", "-c", 1, "wrk", "-t1", "-c%d" % self.args.conns,
                       "-d%ds" % self.args.wrk_seconds, "http://%s:8080/" % SERVER)
        out = sh(*argv, timeout=self.args.wrk_seconds + 60).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return {"rps": rps, "errors": errors + (int(non2xx.group(1)) if non2xx else 0)}

    def legit_run(self, row):
        filt = {"no flood": "sonic", "no filter": None}.get(row, row)
        if filt:
            self.filter_on(filt)
        try:
            self.place(1, 0)
            flood = None
            if row != "no flood":
                flood = self.spawn(self.flood("udp", self.args.wrk_seconds + 2, self.args.flood_pps))
                time.sleep(1)
            result = self.wrk()
            if flood:
                out, err = flood.communicate(timeout=60)
                if flood.returncode != 0:
                    raise RuntimeError("flood failed: " + err)
                result["flood_pps"] = int(out.split()[1]) / float(out.split()[3])
            return result
        finally:
            if filt:
                self.filter_off(filt)


def schedstat(tid):
    with open("/proc/%d/schedstat" % tid) as f:
        return int(f.read().split()[0])


def interleaved(rows, runs):
    """Each run visits every row, alternating the order (ABBA)."""
    for i in range(runs):
        yield from (rows if i % 2 == 0 else tuple(reversed(rows)))


def drop_table(lab, args):
    print("CPU per dropped packet on the receiver (%d runs of %g s, medians)" % (args.runs, args.seconds))
    head = "%-10s %-5s %12s %14s %10s %10s %10s  %s" % (
        "filter", "flood", "ns/drop", "drops/CPU-s", "vs nft", "vs ipt", "drops/run", "")
    print(head)
    for proto in args.protos:
        samples = {r: [] for r in DROP_ROWS}
        for row in interleaved(DROP_ROWS, args.runs):
            samples[row].append(lab.drop_run(row, proto))
        per_sec = {r: statistics.median(s["drops"] / (s["cpu_ns"] / 1e9) if s["cpu_ns"] else 0 for s in samples[r])
                   for r in DROP_ROWS}
        for row in DROP_ROWS:
            ss = samples[row]
            ns = statistics.median(s["cpu_ns"] / s["drops"] if s["drops"] else float("inf") for s in ss)
            failed = any(s["drops"] == 0 for s in ss)
            print("%-10s %-5s %12.1f %14.0f %9.2fx %9.2fx %10d  %s" % (
                row, proto, ns, per_sec[row], per_sec[row] / per_sec["nftables"], per_sec[row] / per_sec["iptables"],
                statistics.median(s["drops"] for s in ss), "FAILED (no drops)" if failed else ""))
        args.results.setdefault("drops", {})[proto] = samples


def legit_table(lab, args):
    print()
    print("Legitimate wrk rps under a %d pps UDP flood (%d runs of %d s, medians; sender and wire on CPU 0, "
          "receiver on CPU 1)" % (args.flood_pps, args.runs, args.wrk_seconds))
    samples = {r: [] for r in LEGIT_ROWS}
    for row in interleaved(LEGIT_ROWS, args.runs):
        samples[row].append(lab.legit_run(row))
    base = statistics.median(s["rps"] for s in samples["no flood"])
    print("%-10s %10s %12s %12s  %s" % ("filter", "rps", "vs no flood", "flood pps", ""))
    for row in LEGIT_ROWS:
        ss = samples[row]
        rps = statistics.median(s["rps"] for s in ss)
        errors = sum(s["errors"] for s in ss)
        flood = statistics.median(s.get("flood_pps", 0) for s in ss)
        print("%-10s %10.0f %11.2fx %12.0f  %s" % (row, rps, rps / base, flood,
                                                   "FAILED (%d errors or non-2xx)" % errors if errors else ""))
    args.results["legit"] = samples


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default=os.path.join(TOP, "build"))
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--seconds", type=float, default=8, help="flood length of a drop run")
    p.add_argument("--protos", nargs="+", default=["udp", "syn"], choices=["udp", "syn"])
    p.add_argument("--flood-pps", type=int, default=50000)
    p.add_argument("--wrk-seconds", type=int, default=5)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--coalesce-us", type=int, default=0, help="r0's NAPI coalescing (gro_flush_timeout)")
    p.add_argument("--only", choices=["drops", "legit"])
    p.add_argument("--json", help="write every sample to this file")
    args = p.parse_args()
    if os.geteuid() != 0:
        print("fw.sh: needs root", file=sys.stderr)
        return 77
    for tool in ("wrk", "nginx", "nft", "iptables", "gcc", "clang", "bpftool", "ethtool"):
        if not shutil.which(tool):
            print("fw.sh: %s missing (packaging/install-deps)" % tool, file=sys.stderr)
            return 3
    args.results = {}
    lab = Lab(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        lab.build()
        if args.only != "legit":
            drop_table(lab, args)
        if args.only != "drops":
            legit_table(lab, args)
    finally:
        lab.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(args.results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
