"""Traffic for the fw tests, run inside a namespace of the lab.

    recv --port P --seconds S            count UDP datagrams per source until
                                         its standard input closes and then S
                                         seconds pass with none arriving;
                                         prints {"SRC": count, ...}
    send --src A --dst B --port P --count N [--rate PPS] [--size BYTES]
         [--sport PORT]                  send N datagrams of BYTES payload,
                                         paced at PPS; prints {"sent", "seconds"}
    connect --src A --dst B --port P     one TCP connect; prints {"ok": bool}

Every address may be IPv4 or IPv6.
"""
import argparse
import json
import socket
import sys
import threading
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def recv(args):
    socks = []
    for fam, any_addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.bind((any_addr, args.port))
        s.settimeout(0.05)
        socks.append(s)
    # The quiet time counts once the test has sent everything (it closes
    # our stdin then): however long its senders take to start.
    sent = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), sent.set()), daemon=True).start()
    print("ready", flush=True)
    counts = {}
    quiet_from = last = None
    while quiet_from is None or time.monotonic() - max(last or 0, quiet_from) < args.seconds:
        if quiet_from is None and sent.is_set():
            quiet_from = time.monotonic()
        for s in socks:
            try:
                while True:
                    _, peer = s.recvfrom(65536)
                    counts[peer[0]] = counts.get(peer[0], 0) + 1
                    last = time.monotonic()
            except (socket.timeout, BlockingIOError):
                pass
    print(json.dumps(counts), flush=True)


def send(args):
    s = socket.socket(family(args.dst), socket.SOCK_DGRAM)
    s.bind((args.src, args.sport))
    payload = b"x" * args.size
    start = time.monotonic()
    for i in range(args.count):
        if args.rate:
            due = start + i / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        s.sendto(payload, (args.dst, args.port))
    print(json.dumps({"sent": args.count, "seconds": time.monotonic() - start}), flush=True)


def connect(args):
    s = socket.socket(family(args.dst), socket.SOCK_STREAM)
    s.settimeout(args.timeout)
    s.bind((args.src, 0))
    try:
        s.connect((args.dst, args.port))
        ok = True
    except OSError:
        ok = False
    finally:
        s.close()
    print(json.dumps({"ok": ok}), flush=True)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("recv")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--seconds", type=float, default=1.0)
    s = sub.add_parser("send")
    s.add_argument("--src", required=True)
    s.add_argument("--dst", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--rate", type=float, default=0)
    s.add_argument("--size", type=int, default=32)
    s.add_argument("--sport", type=int, default=0)
    c = sub.add_parser("connect")
    c.add_argument("--src", required=True)
    c.add_argument("--dst", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--timeout", type=float, default=2.0)
    args = p.parse_args()
    {"recv": recv, "send": send, "connect": connect}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
