"""A small transparent proxy for the steering tests: stands in for
`sonic run --mode transparent` until that exists.

It listens with IP_TRANSPARENT on --listen (ADDR:PORT, IPv6 as [ADDR]:PORT,
repeatable), and for every connection it accepts it finds the original
destination the way a transparent proxy does: getsockopt(SO_ORIGINAL_DST)
(sonic's cgroup steering, iptables REDIRECT), else getsockname() (tc
sk_assign, TPROXY). It logs one JSON line per connection to --log, then
relays to that destination from a socket marked with the bypass mark, so
sonic never steers the proxy's own upstream connection back to it.
"""
import argparse
import json
import socket
import struct
import sys
import threading

IP_TRANSPARENT = 19
IPV6_TRANSPARENT = 75
SO_ORIGINAL_DST = 80
BYPASS_MARK = 0x5301


def parse(text):
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), host, int(port)


def original_destination(conn):
    family = conn.family
    try:
        if family == socket.AF_INET:
            raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            port, = struct.unpack("!H", raw[2:4])
            return socket.inet_ntop(socket.AF_INET, raw[4:8]), port, "so_original_dst"
        raw = conn.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
        port, = struct.unpack("!H", raw[2:4])
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port, "so_original_dst"
    except OSError:
        name = conn.getsockname()
        return name[0], name[1], "getsockname"


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve_one(conn, peer, log, lock):
    host, port, how = original_destination(conn)
    with lock:
        log.write(json.dumps({"client": peer[0], "client_port": peer[1], "orig": host, "orig_port": port,
                              "via": how}) + "\n")
        log.flush()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    up = socket.socket(family, socket.SOCK_STREAM)
    up.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, BYPASS_MARK)
    try:
        up.connect((host, port))
    except OSError:
        conn.close()
        up.close()
        return
    t = threading.Thread(target=pipe, args=(up, conn), daemon=True)
    t.start()
    pipe(conn, up)
    t.join()
    conn.close()
    up.close()


def listen(spec, log, lock):
    family, host, port = parse(spec)
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET:
        s.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
    else:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((host, port))
    s.listen(128)
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", action="append", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    lock = threading.Lock()
    log = open(args.log, "a")
    socks = [listen(spec, log, lock) for spec in args.listen]
    print("ready", flush=True)

    def accept_loop(s):
        while True:
            conn, peer = s.accept()
            threading.Thread(target=serve_one, args=(conn, peer, log, lock), daemon=True).start()
    for s in socks[1:]:
        threading.Thread(target=accept_loop, args=(s,), daemon=True).start()
    accept_loop(socks[0])


if __name__ == "__main__":
    sys.exit(main())
