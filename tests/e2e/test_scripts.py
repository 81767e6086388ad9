"""Worker scripts end to end: `sonic run` with JavaScript workers between curl
and the test origin. Both script shapes, modern syntax (translated by Babel),
the example workers, fetch() to other origins and upstream groups, and every
failure a script can have: a throw, an endless loop, an exhausted heap, a
syntax error, a reload with a broken script.
"""
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import time

import pytest

import proxyrun
import sonictest

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
WORKERS = os.path.join(REPO, "examples", "workers")
# A translation (nodejs + Babel) can take seconds on a loaded machine.
START = 90.0


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def config(tmp_path, upstream, script=None, extra="", mode="reverse", upstreams=""):
    port = proxyrun.free_port()
    admin = proxyrun.free_port()
    text = "workers = 1\n"
    if script:
        text += "script = %s\n" % proxyrun.toml_string(script)
    text += extra + "\n"
    text += "[[listener]]\naddress = \"127.0.0.1:%d\"\nmode = \"%s\"\n" % (port, mode)
    text += "[admin]\nenabled = true\nlisten = \"127.0.0.1:%d\"\n" % admin
    text += "[access_log]\npath = %s\n" % proxyrun.toml_string(str(tmp_path / "access.log"))
    if mode == "reverse":
        text += "[[upstream]]\nname = \"origin\"\nservers = [\"%s\"]\n" % upstream
        text += upstreams
        text += "[[route]]\nupstream = \"origin\"\n"
    path = write(tmp_path, "sonic.toml", text)
    return path, port, admin


def start(sonic_run, tmp_path, path, port, admin=None):
    return sonic_run.start(["--config", path], port, [admin] if admin else [], timeout=START,
                           global_args=["--state-dir", str(tmp_path / "state")])


def get(port, path="/", headers=(), data=None, method=None, timeout=20):
    cmd = ["curl", "-sS", "-m", str(timeout), "-o", "-", "-D", "-", "http://127.0.0.1:%d%s" % (port, path)]
    for h in headers:
        cmd += ["-H", h]
    if data is not None:
        cmd += ["--data-binary", data]
    if method:
        cmd += ["-X", method]
    out = subprocess.run(cmd, capture_output=True, timeout=timeout + 5)
    assert out.returncode == 0, out.stderr
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    return status, hdrs, body


MODERN = r"""
class Rule {
  constructor(name, re) { this.name = name; this.re = re; }
  test(text) { return this.re.test(text); }
}
const rules = [new Rule('sqli', /union\s+select/i)];
const tag = (strings, ...values) => strings.raw.map((s, i) => s + (values[i] ?? '')).join('');

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const { pathname, searchParams } = url;
    const query = decodeURIComponent(url.search);
    for (const rule of rules) {
      if (rule.test(query)) return new Response(`blocked by ${rule.name}`, { status: 403 });
    }
    if (pathname === '/info') {
      const extra = { ...Object.fromEntries(searchParams), env: env.GREETING };
      const list = [...request.headers.keys()].filter((k) => k.startsWith('x-'));
      return Response.json({ extra, list, opt: request.headers.get('x-missing')?.length ?? 'none', t: tag`a${1}b` });
    }
    const response = await fetch(request);
    const out = new Response(response.body, response);
    out.headers.set('x-scripted', 'modern');
    return out;
  },
};
"""


def test_modern_syntax_worker_blocks_answers_and_edits_the_origin_response(sonic_run, origin, tmp_path):
    script = write(tmp_path, "modern.js", MODERN)
    path, port, admin = config(tmp_path, origin.address, script, extra='[vars]\nGREETING = "hello"\n')
    p = start(sonic_run, tmp_path, path, port, admin)

    status, _, body = get(port, "/echo?q=1%20UNION%20SELECT%20pw")
    assert status == 403 and body == b"blocked by sqli"
    assert origin.requests_to("/echo") == []

    status, hdrs, body = get(port, "/info?a=1", headers=["x-one: 1", "x-two: 2"])
    assert status == 200, body
    info = json.loads(body)
    assert info == {"extra": {"a": "1", "env": "hello"}, "list": ["x-one", "x-two"], "opt": "none", "t": "a1b"}
    assert hdrs["content-type"] == ["application/json"]

    status, hdrs, body = get(port, "/echo?q=fine")
    assert status == 200 and hdrs["x-scripted"] == ["modern"]
    assert json.loads(body)["path"] == "/echo"
    # The origin's body streams through: a big one arrives whole.
    status, hdrs, body = get(port, "/bytes?n=3000000")
    assert status == 200 and len(body) == 3000000 and hdrs["x-scripted"] == ["modern"]

    values = proxyrun.metrics(admin)
    assert proxyrun.sample(values, "sonic_script_invocations_total", script=script) == 4
    assert proxyrun.sample(values, "sonic_script_failures_total", script=script, kind="throw") == 0
    assert proxyrun.sample(values, "sonic_script_cpu_seconds_total", script=script) > 0
    # Access log lines are written in batches, at most a quarter second late.
    deadline = time.monotonic() + 10
    while True:
        logged = [json.loads(line) for line in (tmp_path / "access.log").read_text().splitlines() if line]
        if len(logged) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [e.get("script_outcome") for e in logged][:3] == ["respond", "respond", "origin"]
    assert all(e["script"] == "modern.js" for e in logged)
    # Translated once; the cache under the state dir holds it.
    assert len(os.listdir(tmp_path / "state" / "scripts")) == 1


SERVICE_WORKER = """
addEventListener('fetch', function (event) {
  var h = event.request.headers;
  h.set('x-edge', 'sonic');
  h.delete('x-secret');
  if (event.request.url.indexOf('/teapot') >= 0) event.respondWith(new Response('short and stout', {status: 418}));
});
addEventListener('response', function (event) {
  event.response.headers.set('x-seen', String(event.response.status));
});
"""


def test_service_worker_shape_edits_requests_in_place_and_responses(sonic_run, origin, tmp_path):
    script = write(tmp_path, "sw.js", SERVICE_WORKER)
    path, port, admin = config(tmp_path, origin.address, script)
    start(sonic_run, tmp_path, path, port, admin)
    status, hdrs, body = get(port, "/echo", headers=["x-secret: 42", "x-keep: yes"])
    assert status == 200
    sent = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert sent["x-edge"] == "sonic" and sent["x-keep"] == "yes" and "x-secret" not in sent
    assert hdrs["x-seen"] == ["200"]
    status, _, body = get(port, "/teapot")
    assert status == 418 and body == b"short and stout"
    # A POST body still reaches the origin after the script ran.
    status, _, body = get(port, "/echo", data="x" * 70000)
    assert status == 200 and json.loads(body)["body_len"] == 70000


def test_a_throwing_script_costs_its_request_a_500_with_the_stack_logged(sonic_run, origin, tmp_path):
    script = write(tmp_path, "throw.js", """
function deep(n) { if (n === 0) throw new TypeError('bad thing ' + n); return deep(n - 1); }
export default {
  fetch(request, env, ctx) {
    if (request.url.indexOf('/pass') >= 0) ctx.passThroughOnException();
    if (request.url.indexOf('/ok') >= 0) return new Response('ok');
    deep(3);
  }
};
""")
    path, port, admin = config(tmp_path, origin.address, script)
    p = start(sonic_run, tmp_path, path, port, admin)
    status, _, body = get(port, "/boom")
    assert status == 500
    status, _, body = get(port, "/pass/echo")
    assert status == 200 and json.loads(body)["path"] == "/pass/echo"
    status, _, body = get(port, "/ok")
    assert status == 200 and body == b"ok"
    time.sleep(0.3)
    err = p.stderr()
    lines = [l for l in err.splitlines() if "500 for GET" in l]
    assert len(lines) == 1, err
    assert "TypeError: bad thing 0" in lines[0] and "throw.js:2" in err, err
    values = proxyrun.metrics(admin)
    assert proxyrun.sample(values, "sonic_script_failures_total", script=script, kind="throw") == 1
    assert proxyrun.sample(values, "sonic_local_errors_total", cause="script_error") == 1


def test_an_endless_loop_is_cut_at_the_cpu_limit_without_stalling_others(sonic_run, origin, tmp_path):
    script = write(tmp_path, "loop.js", """
addEventListener('fetch', function (event) {
  if (event.request.url.indexOf('/spin') >= 0) { for (;;) {} }
  event.respondWith(new Response('quick'));
});
""")
    path, port, admin = config(tmp_path, origin.address, script, extra="[script_limits]\ncpu = \"100ms\"\n")
    start(sonic_run, tmp_path, path, port, admin)

    def quick():
        t = time.monotonic()
        s, _, b = get(port, "/q")
        return s, b, time.monotonic() - t

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        spins = [pool.submit(get, port, "/spin") for _ in range(4)]
        time.sleep(0.05)
        quicks = [pool.submit(quick) for _ in range(8)]
        for f in spins:
            assert f.result()[0] == 500
        for f in quicks:
            s, b, took = f.result()
            assert s == 200 and b == b"quick"
            # Four loops run before it at most, each cut at 100 ms.
            assert took < 3.0
    values = proxyrun.metrics(admin)
    assert proxyrun.sample(values, "sonic_script_failures_total", script=script, kind="timeout") == 4
    assert proxyrun.sample(values, "sonic_local_errors_total", cause="script_limit") == 4


def test_a_script_that_exhausts_its_heap_gets_500_and_a_new_heap(sonic_run, origin, tmp_path):
    script = write(tmp_path, "heap.js", """
var keep = [];
addEventListener('fetch', function (event) {
  if (event.request.url.indexOf('/grow') >= 0) { for (;;) keep.push(new Array(10000).join('x') + keep.length); }
  event.respondWith(new Response('kept ' + keep.length));
});
""")
    path, port, admin = config(tmp_path, origin.address, script,
                               extra="[script_limits]\nheap_bytes = 16777216\ncpu = \"5s\"\n")
    start(sonic_run, tmp_path, path, port, admin)
    status, _, _ = get(port, "/grow")
    assert status == 500
    status, _, body = get(port, "/after")
    assert status == 200 and body == b"kept 0"  # a fresh heap
    assert proxyrun.sample(proxyrun.metrics(admin), "sonic_script_failures_total", script=script, kind="heap") == 1


def test_check_reports_syntax_errors_as_file_line_column(tmp_path):
    bad = write(tmp_path, "bad.js", "export default {\n  fetch(request) {\n    return new Response('x'\n  }\n};\n")
    r = subprocess.run([sonictest.SONIC, "--state-dir", str(tmp_path / "state"), "run", "--check",
                        "--mode", "reverse", "--upstream", "127.0.0.1:9", "--script", bad],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r
    assert re.search(re.escape(bad) + r":4:\d+: ", r.stderr), r.stderr


def test_a_script_without_a_handler_or_over_the_size_limit_is_refused(tmp_path):
    none = write(tmp_path, "none.js", "var x = 1;\n")
    r = subprocess.run([sonictest.SONIC, "run", "--check", "--mode", "reverse", "--upstream", "127.0.0.1:9",
                        "--script", none], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no handler" in r.stderr, r
    big = write(tmp_path, "big.js", "addEventListener('fetch', function () {});\n" + "// pad\n" * 2000)
    cfg = write(tmp_path, "c.toml", "script = %s\n[script_limits]\nscript_bytes = 1000\n"
                "[[listener]]\naddress = \"127.0.0.1:9\"\nmode = \"forward\"\n" % proxyrun.toml_string(big))
    r = subprocess.run([sonictest.SONIC, "run", "--check", "--config", cfg], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "size limit" in r.stderr, r


def test_sighup_swaps_scripts_and_keeps_the_old_one_when_the_new_one_is_broken(sonic_run, origin, tmp_path):
    script = write(tmp_path, "v.js", "addEventListener('fetch', function (e) { e.respondWith(new Response('v1')); });\n")
    path, port, admin = config(tmp_path, origin.address, script)
    p = start(sonic_run, tmp_path, path, port, admin)
    assert get(port, "/")[2] == b"v1"
    write(tmp_path, "v.js", "addEventListener('fetch', function (e) { e.respondWith(new Response('v2')); });\n")
    p.signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while get(port, "/")[2] != b"v2":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    write(tmp_path, "v.js", "addEventListener('fetch', function (e) { e.respondWith(new Response('v3') ; });\n")
    p.signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while "v.js" not in p.stderr() or "reload" not in p.stderr():
        assert time.monotonic() < deadline, p.stderr()
        time.sleep(0.2)
    assert get(port, "/")[2] == b"v2"
    assert proxyrun.sample(proxyrun.metrics(admin), "sonic_config_reload_errors_total") == 1


def test_fetch_reaches_other_origins_and_upstream_groups(sonic_run, origin, origin_factory, tmp_path):
    other = origin_factory()
    script = write(tmp_path, "sub.js", """
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === '/both') {
      const [a, b] = await Promise.all([
        fetch(`http://${env.OTHER}/echo?from=direct`).then((r) => r.json()),
        fetch('http://extra/echo?from=group', { method: 'POST', body: 'hi', headers: { 'x-sub': '1' } }).then((r) => r.json()),
      ]);
      return Response.json({ a: a.target, b: b.target, bbody: b.body, bh: b.headers.some(([k, v]) => k === 'x-sub') });
    }
    if (url.pathname === '/dead') {
      try { await fetch('http://127.0.0.1:9/'); } catch (e) { return new Response('caught: ' + e.message, { status: 599 }); }
    }
    return fetch(request);
  },
};
""")
    path, port, admin = config(tmp_path, origin.address, script,
                               extra='[vars]\nOTHER = "%s"\n' % other.address,
                               upstreams='[[upstream]]\nname = "extra"\nservers = ["%s"]\n' % other.address)
    start(sonic_run, tmp_path, path, port, admin)
    status, _, body = get(port, "/both")
    assert status == 200, body
    assert json.loads(body) == {"a": "/echo?from=direct", "b": "/echo?from=group", "bbody": "hi", "bh": True}
    assert len(other.requests_to("/echo")) == 2
    status, _, body = get(port, "/dead")
    assert status == 599 and b"caught: fetch http://127.0.0.1:9/ failed" in body


def test_request_bodies_and_web_apis_inside_a_request(sonic_run, origin, tmp_path):
    script = write(tmp_path, "apis.js", """
export default {
  async fetch(request) {
    const form = await request.formData();
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(form.get('a')));
    const hex = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
    const key = await crypto.subtle.importKey('raw', new Uint8Array(16), { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const sealed = await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, new TextEncoder().encode('secret'));
    const opened = new TextDecoder().decode(await crypto.subtle.decrypt({ name: 'AES-GCM', iv }, key, sealed));
    return Response.json({ a: form.get('a'), b: form.getAll('b'), hex, opened, used: request.bodyUsed, b64: btoa('hi'),
                           uuid: /^[0-9a-f-]{36}$/.test(crypto.randomUUID()) });
  },
};
""")
    path, port, admin = config(tmp_path, origin.address, script)
    start(sonic_run, tmp_path, path, port, admin)
    status, _, body = get(port, "/", data="a=hello+world&b=1&b=2",
                          headers=["content-type: application/x-www-form-urlencoded"])
    assert status == 200, body
    got = json.loads(body)
    assert got == {"a": "hello world", "b": ["1", "2"],
                   "hex": "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9",
                   "opened": "secret", "used": True, "b64": "aGk=", "uuid": True}


def test_the_embedded_default_runs_the_example_worker(sonic_run, tmp_path):
    r = subprocess.run([sonictest.SONIC, "-j", "run", "--check"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert [s["path"] for s in json.loads(r.stdout)["scripts"]] == ["builtin:example.js"]
    path, port, admin = config(tmp_path, None, "builtin:example.js", mode="forward")
    start(sonic_run, tmp_path, path, port, admin)
    out = subprocess.run(["curl", "-sS", "-m", "10", "-x", "127.0.0.1:%d" % port, "http://sonic.test/x?y=1"],
                         capture_output=True, timeout=15, check=True)
    got = json.loads(out.stdout)
    assert got["engine"] == "sonic" and got["path"] == "/x" and got["query"] == {"y": "1"}
    # event.client, asked of the host when the script reads it.
    assert got["client"].startswith("127.0.0.1:"), got


def test_example_waf_and_headers_workers(sonic_run, origin, tmp_path):
    path, port, admin = config(tmp_path, origin.address, os.path.join(WORKERS, "waf.js"))
    start(sonic_run, tmp_path, path, port, admin)
    for attack in ["/echo?id=1%27%20OR%20%271%27=%271", "/echo?q=%3Cscript%3Ealert(1)%3C/script%3E",
                   "/echo?q=1%20union%20all%20select%20password%20from%20users"]:
        status, _, body = get(port, attack)
        assert status == 403, attack
        assert json.loads(body)["error"] == "request blocked"
    status, _, body = get(port, "/echo", data="comment=<img src=x onerror=alert(1)>",
                          headers=["content-type: application/x-www-form-urlencoded"])
    assert status == 403
    status, _, body = get(port, "/echo?q=union%20station", data="name=bob",
                          headers=["content-type: application/x-www-form-urlencoded"])
    assert status == 200 and json.loads(body)["body_len"] == 8

    tmp2 = tmp_path / "h"
    tmp2.mkdir()
    path, port, admin = config(tmp2, origin.address, os.path.join(WORKERS, "headers.js"))
    start(sonic_run, tmp2, path, port, admin)
    status, hdrs, body = get(port, "/echo", headers=["x-forwarded-host: evil"])
    sent = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert "x-forwarded-host" not in sent and re.match(r"^[0-9a-f-]{36}$", sent["x-request-id"])
    assert hdrs["x-content-type-options"] == ["nosniff"] and "server" not in hdrs


def test_example_gateway_and_ab_workers(sonic_run, origin, origin_factory, tmp_path):
    users, orders = origin_factory(), origin_factory()
    extra = '[vars]\nAPI_SECRET = "s3cret"\nB_PERCENT = 100\n'
    groups = ('[[upstream]]\nname = "users"\nservers = ["%s"]\n[[upstream]]\nname = "orders"\nservers = ["%s"]\n'
              % (users.address, orders.address))
    path, port, admin = config(tmp_path, origin.address, os.path.join(WORKERS, "gateway.js"), extra=extra,
                               upstreams=groups)
    start(sonic_run, tmp_path, path, port, admin)
    import base64
    import hashlib
    import hmac
    mac = base64.urlsafe_b64encode(hmac.new(b"s3cret", b"ann", hashlib.sha256).digest()).rstrip(b"=").decode()
    status, hdrs, body = get(port, "/api/users/echo?x=1", headers=["authorization: Bearer ann." + mac])
    assert status == 200, body
    assert hdrs["x-gateway-route"] == ["users"] and json.loads(body)["target"] == "/echo?x=1"
    sent = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert sent["x-user"] == "ann" and "authorization" not in sent
    assert get(port, "/api/orders/echo", headers=["authorization: Bearer ann.bad"])[0] == 401
    assert json.loads(get(port, "/api/nowhere")[2])["status"] == 404
    assert orders.requests_to("/echo") == []

    tmp2 = tmp_path / "ab"
    tmp2.mkdir()
    path, port, admin = config(tmp2, origin.address, os.path.join(WORKERS, "ab.js"), extra=extra)
    start(sonic_run, tmp2, path, port, admin)
    status, hdrs, body = get(port, "/echo")
    assert hdrs["x-ab-bucket"] == ["B"] and any(c.startswith("sonic-ab=B") for c in hdrs["set-cookie"])
    assert json.loads(body)["path"] == "/b/echo"
    status, hdrs, body = get(port, "/echo", headers=["cookie: sonic-ab=A"])
    assert hdrs["x-ab-bucket"] == ["A"] and "set-cookie" not in hdrs and json.loads(body)["path"] == "/echo"
