"""What mitmproxy spends on certificates for a first request to a new host.

Method: mitmproxy's own CertStore, in process, as its TLS layer uses it
(mitmproxy/addons/tlsconfig.py, tls_start_client): get_cert() for the SNI,
then the conversions to pyOpenSSL objects that go into the connection
(Cert.to_pyopenssl(), PKey.from_cryptography_key()). Timed per call with
perf_counter over N names never seen, after one warm-up call; a cached
lookup is get_cert() of a name seen before. Prints one JSON object.

Usage: /usr/bin/python3 mitm_certs.py [N]
"""
import json
import shutil
import statistics
import sys
import tempfile
import time

from OpenSSL import crypto
from mitmproxy import certs, version


def percentile(values, p):
    values = sorted(values)
    return values[int(p * (len(values) - 1) + 0.5)]


def first_use(store, name):
    entry = store.get_cert(name, [name])
    entry.cert.to_pyopenssl()
    crypto.PKey.from_cryptography_key(entry.privatekey)


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    confdir = tempfile.mkdtemp(prefix="sonic-mitm-bench-")
    try:
        store = certs.CertStore.from_store(confdir, "mitmproxy", 2048)
        first_use(store, "warmup.bench.example")
        latencies = []
        start = time.perf_counter()
        for i in range(count):
            t0 = time.perf_counter()
            first_use(store, "host%d.bench.example" % i)
            latencies.append((time.perf_counter() - t0) * 1e6)
        total_ms = (time.perf_counter() - start) * 1e3
        # mitmproxy keeps the last 100 leaves; look up one of those.
        name = "host%d.bench.example" % (count - 1)
        rounds = 20000
        t0 = time.perf_counter()
        for _ in range(rounds):
            store.get_cert(name, [name])
        cached_ns = (time.perf_counter() - t0) * 1e9 / rounds
        print(json.dumps({
            "mitmproxy": version.VERSION,
            "ca_key": "rsa-%d" % store.default_privatekey.key_size,
            "policy": "ca-key-reused",
            "names": count,
            "mint_median_us": statistics.median(latencies),
            "mint_p99_us": percentile(latencies, 0.99),
            "mint_total_ms": total_ms,
            "cached_ns": cached_ns,
        }))
    finally:
        shutil.rmtree(confdir, ignore_errors=True)


main()
