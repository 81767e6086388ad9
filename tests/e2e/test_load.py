"""Load through one worker, with wrk: 200k requests at -c50 with no non-2xx
and no socket error; the same across 10 SIGHUPs, with one access-log line
per request (none lost, none doubled)."""
import json
import os
import re
import signal
import subprocess
import threading
import time

import proxyrun
import sonicconf

REQUESTS = 200000

# Leaves a mark once LIMIT responses came; run_wrk() then ends wrk with
# SIGINT, after which wrk prints its summary (its own duration would have
# it wait the whole -d even with its thread stopped).
MARK_AFTER = """
local limit, mark = %d, "%s"
local n = 0
response = function(status, headers, body)
   n = n + 1
   if n == limit then io.open(mark, "w"):close() end
end
"""


def run_wrk(port, tmp_path, seconds=300):
    """wrk -t1 -c50 until REQUESTS responses: (responses, non-2xx, socket
    errors as wrk words them or "", the output)."""
    mark = tmp_path / "wrk.done"
    if mark.exists():
        mark.unlink()
    script = tmp_path / "mark.lua"
    script.write_text(MARK_AFTER % (REQUESTS, mark))
    w = subprocess.Popen(["wrk", "-t1", "-c50", "-d%ds" % seconds, "-s", str(script),
                          "http://127.0.0.1:%d/" % port], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + seconds
        while not mark.exists() and w.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        w.send_signal(signal.SIGINT)
        out, _ = w.communicate(timeout=60)
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()
    done = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    return done, int(non2xx.group(1)) if non2xx else 0, errors.group(0) if errors else "", out


def test_200k_requests_at_c50_get_no_error(sonic_run, tmp_path):
    nginx = proxyrun.Nginx(str(tmp_path))
    try:
        p = sonic_run.reverse(nginx.address)
        done, non2xx, errors, out = run_wrk(p.port, tmp_path)
    finally:
        nginx.stop()
    assert done >= REQUESTS, out
    assert non2xx == 0 and not errors, out


def access_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_10_sighups_under_load_lose_no_request_and_log_each_once(sonic_run, tmp_path):
    nginx = proxyrun.Nginx(str(tmp_path))
    log = str(tmp_path / "access.log")
    try:
        cfg = sonicconf.Config().reverse(nginx.address).access_log(log)
        p = sonic_run.config(cfg)
        result = {}
        load = threading.Thread(target=lambda: result.update(r=run_wrk(p.port, tmp_path)))
        load.start()
        time.sleep(1)
        for _ in range(10):
            p.signal(signal.SIGHUP)
            time.sleep(0.5)
        load.join(200)
        done, non2xx, errors, out = result["r"]
        time.sleep(1)  # the access log is written at most a quarter second late
        lines = access_lines(log)
    finally:
        nginx.stop()
    assert p.stderr().count("reload: configuration from") == 10, p.stderr()[-2000:]
    assert done >= REQUESTS, out
    assert non2xx == 0 and not errors, out
    statuses = {}
    for e in lines:
        statuses[e["status"]] = statuses.get(e["status"], 0) + 1
    # Every response wrk counted has its line; the at most 50 requests in
    # flight when wrk was stopped may have one too (answered, or cut: 499).
    assert done <= len(lines) <= done + 50, (done, len(lines), statuses)
    assert statuses.get(200, 0) >= done and set(statuses) <= {200, 499}, statuses
    assert os.path.getsize(log) > 0
