// The worker-script runtime inside Duktape: the engine's limits, script
// loading, and the Web APIs of the prelude, each checked by JavaScript that
// runs in a real heap (as a worker's) and reports what failed.
#include "js/engine.hpp"
#include "js/program.hpp"
#include "js/runtime.hpp"
#include "out/error.hpp"

#include <catch2/catch.hpp>
#include <duktape.h>

#include <string>

using namespace sonic;

namespace {

// Assertion helpers for the JavaScript below; failures collect in `failed`.
const char kHarness[] = R"JS(
var failed = [];
var pending = 0;
function eq(got, want, what) {
  var g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) failed.push(what + ': got ' + g + ', want ' + w);
}
function throws(fn, kind, what) {
  try { fn(); failed.push(what + ': did not throw'); }
  catch (e) { if (kind && !(e instanceof kind)) failed.push(what + ': threw ' + e); }
}
function later(p, check, what) {
  pending++;
  p.then(function (v) { pending--; try { check(v); } catch (e) { failed.push(what + ': ' + e); } },
         function (e) { pending--; failed.push(what + ': rejected ' + (e && e.stack || e)); });
}
addEventListener('fetch', function () {});
)JS";

// Runs BODY (ES5) with the harness in a heap, drains its microtasks and
// returns what failed, one line each.
std::string run_js(const std::string &body)
{
	auto program = js::load_source("test.js", std::string(kHarness) + body, js::LoadOptions{});
	js::Instance instance(program, nullptr);
	duk_context *ctx = instance.ctx();
	instance.push_host_call("drain");
	duk_push_number(ctx, 0);
	auto ran = instance.heap().call(1, std::chrono::seconds(5));
	REQUIRE(ran.stop == js::Stop::None);
	duk_pop(ctx);
	duk_peval_string(ctx, "failed.concat(pending ? ['promises still pending: ' + pending] : []).join('\\n')");
	std::string out = duk_safe_to_string(ctx, -1);
	duk_pop(ctx);
	return out;
}

} // namespace

TEST_CASE("a heap stops runaway code at its CPU deadline and refuses bytes over its limit", "[js]")
{
	js::Heap heap(8u << 20);
	duk_context *ctx = heap.ctx();
	auto ran = heap.run_program("for (;;) {}", "loop.js", std::chrono::milliseconds(50));
	CHECK(ran.stop == js::Stop::Timeout);
	CHECK(ran.took < std::chrono::milliseconds(1000));
	duk_pop(ctx);
	// The heap is usable afterwards.
	ran = heap.run_program("1 + 1", "ok.js", std::chrono::milliseconds(50));
	CHECK(ran.stop == js::Stop::None);
	CHECK(duk_get_int(ctx, -1) == 2);
	duk_pop(ctx);
	ran = heap.run_program("var a = []; for (;;) a.push(new Array(1000).join('x') + a.length);", "grow.js",
			       std::chrono::seconds(10));
	CHECK(ran.stop == js::Stop::Heap);
	CHECK(heap.used() <= (8u << 20));
}

TEST_CASE("export default becomes a variable on the same line", "[js]")
{
	CHECK(js::rewrite_export_default("export default {\n fetch() {} }") == "var __sonic_default = {\n fetch() {} }");
	CHECK(js::rewrite_export_default("const a = 1;\nexport default a;") == "const a = 1;\nvar __sonic_default = a;");
	CHECK(js::rewrite_export_default("var exported = 1;") == "var exported = 1;");
}

TEST_CASE("scripts are checked at load: syntax errors by line, a handler required, the size limit", "[js]")
{
	auto err = js::compile_error("var a = 1;\nvar b = ;\n", "x.js");
	REQUIRE(err);
	CHECK(err->line == 2);
	CHECK_FALSE(js::compile_error("var a = 1;", "x.js"));
	CHECK_THROWS_AS(js::load_source("none.js", "var x = 1;", js::LoadOptions{}), Error);
	js::LoadOptions small;
	small.limits.script_bytes = 10;
	CHECK_THROWS_AS(js::load_source("big.js", "addEventListener('fetch', function () {});", small), Error);
	CHECK_THROWS_AS(js::load_source("throws.js", "throw new Error('at load');", js::LoadOptions{}), Error);
}

TEST_CASE("Headers: case-insensitive, combined, Set-Cookie apart, sorted iteration", "[js]")
{
	CHECK(run_js(R"JS(
var h = new Headers({'Content-Type': 'text/plain', 'X-B': '1'});
h.append('x-b', '2');
h.append('Set-Cookie', 'a=1');
h.append('set-cookie', 'b=2');
eq(h.get('content-type'), 'text/plain', 'get is case-insensitive');
eq(h.get('X-b'), '1, 2', 'values combine');
eq(h.getSetCookie(), ['a=1', 'b=2'], 'getSetCookie');
var seen = [];
h.forEach(function (v, k) { seen.push(k + '=' + v); });
eq(seen, ['content-type=text/plain', 'set-cookie=a=1', 'set-cookie=b=2', 'x-b=1, 2'], 'sorted, cookies apart');
eq(Array.from(h.keys()), ['content-type', 'set-cookie', 'set-cookie', 'x-b'], 'keys');
h.set('x-b', ' 3 ');
eq(h.get('x-b'), '3', 'set replaces and trims');
h.delete('X-B');
eq(h.has('x-b'), false, 'delete');
throws(function () { h.set('bad name', 'x'); }, TypeError, 'invalid name');
throws(function () { h.set('x', 'a\r\nb'); }, TypeError, 'CRLF in value');
eq(new Headers([['a', '1'], ['b', '2']]).get('b'), '2', 'from pairs');
eq(new Headers(new Headers({q: 'z'})).get('Q'), 'z', 'from Headers');
eq(h.get('missing'), null, 'missing is null');
)JS") == "");
}

TEST_CASE("URL and URLSearchParams parse as WHATWG says", "[js]")
{
	CHECK(run_js(R"JS(
var u = new URL('HTTP://User:Pw@Example.COM:80/a/./b/../c%2Fd?x=1&y=%20z#frag');
eq(u.href, 'http://User:Pw@example.com/a/c%2Fd?x=1&y=%20z#frag', 'href normalised');
eq([u.protocol, u.host, u.hostname, u.port, u.pathname, u.search, u.hash, u.origin],
   ['http:', 'example.com', 'example.com', '', '/a/c%2Fd', '?x=1&y=%20z', '#frag', 'http://example.com'], 'parts');
eq(u.searchParams.get('y'), ' z', 'query decoded');
eq(new URL('../x?q#h', 'http://h/a/b/c').href, 'http://h/a/x?q#h', 'relative');
eq(new URL('//other/p', 'https://h/').href, 'https://other/p', 'scheme-relative');
eq(new URL('http://[::FFFF:1.2.3.4]:8080/').host, '[::ffff:102:304]:8080', 'IPv6 with IPv4 tail');
eq(new URL('http://[2001:db8:0:0:0:0:0:1]/').hostname, '[2001:db8::1]', 'IPv6 compressed');
eq(new URL('http://0x7f.1/').hostname, '127.0.0.1', 'IPv4 forms');
eq(new URL('http://h/a b/ü').pathname, '/a%20b/%C3%BC', 'path percent-encoding');
eq(new URL('https://h:443/').port, '', 'default port dropped');
throws(function () { new URL('/relative'); }, TypeError, 'relative without base');
throws(function () { new URL('http://h:99999/'); }, TypeError, 'port out of range');
throws(function () { new URL('http://[::1/'); }, TypeError, 'bad IPv6');
eq(URL.canParse('mailto:a@b'), true, 'opaque URL');
var p = new URLSearchParams('?a=1&b=2&a=3&c=%26+x');
eq(p.getAll('a'), ['1', '3'], 'getAll');
eq(p.get('c'), '& x', 'plus and percent');
p.append('d', 'é ~');
eq(p.toString(), 'a=1&b=2&a=3&c=%26+x&d=%C3%A9+%7E', 'serialised');
p.sort();
eq(Array.from(p.keys()), ['a', 'a', 'b', 'c', 'd'], 'sort is stable');
var v = new URL('http://h/?x=1');
v.searchParams.set('x', '2');
eq(v.href, 'http://h/?x=2', 'searchParams write through');
v.pathname = '/new path';
eq(v.href, 'http://h/new%20path?x=2', 'pathname setter');
// The fast path for URLs already in normal form, and what it hands on.
var f = new URL('http://api.example.com:8080/v1/x?id=42&q=a%20b#top');
eq([f.hostname, f.port, f.pathname, f.search, f.hash], ['api.example.com', '8080', '/v1/x', '?id=42&q=a%20b', '#top'], 'fast path parts');
eq(new URL('http://h:080/').href, 'http://h/', 'leading-zero default port');
eq(new URL('http://u:p@h/').username, 'u', 'userinfo');
eq(new URL('http://1.2.3/').hostname, '1.2.0.3', 'short IPv4 form');
eq(new URL('http://10.0.0.1:81/a').host, '10.0.0.1:81', 'IPv4 with port');
eq(new URL('http://h/a/%2e%2E/b').pathname, '/b', 'encoded dot segment');
eq(new URL("http://h/it's").pathname, "/it's", 'quote in the path');
eq(new URL("http://h/?it's").search, '?it%27s', 'quote in the query');
eq(new URL('http://a..b:/').host, 'a..b', 'empty label and empty port (the full parser)');
)JS") == "");
}

TEST_CASE("Request and Response: constructors, bodies read once, clone, statics", "[js]")
{
	CHECK(run_js(R"JS(
var r = new Request('http://h/p', {method: 'post', body: '{"a":1}', headers: {'x-a': '1'}});
eq([r.method, r.url, r.headers.get('x-a'), r.headers.get('content-type')],
   ['POST', 'http://h/p', '1', 'text/plain;charset=UTF-8'], 'request');
var c = r.clone();
later(r.json(), function (v) {
  eq(v, {a: 1}, 'json');
  eq(r.bodyUsed, true, 'bodyUsed');
}, 'request json');
later(r.text().then(function () { return 'no'; }, function (e) { return e instanceof TypeError; }),
      function (v) { eq(v, true, 'read twice rejects'); }, 'second read');
later(c.text(), function (v) { eq(v, '{"a":1}', 'clone has the body'); }, 'clone');
throws(function () { new Request('http://h/', {method: 'GET', body: 'x'}); }, TypeError, 'GET with body');
var s = new Response('hi', {status: 201, statusText: 'Made', headers: {'x-b': '2'}});
eq([s.status, s.statusText, s.ok, s.headers.get('x-b')], [201, 'Made', true, '2'], 'response');
throws(function () { new Response('x', {status: 99}); }, RangeError, 'status range');
throws(function () { new Response('x', {status: 204}); }, TypeError, 'null body status');
var j = Response.json({k: [1]}, {status: 400});
eq([j.status, j.headers.get('content-type')], [400, 'application/json'], 'Response.json');
later(j.text(), function (v) { eq(v, '{"k":[1]}', 'json body'); }, 'json text');
var d = Response.redirect('http://h/x', 301);
eq([d.status, d.headers.get('location')], [301, 'http://h/x'], 'redirect');
throws(function () { Response.redirect('http://h/', 200); }, RangeError, 'redirect status');
later(new Response(new Uint8Array([104, 105])).arrayBuffer(), function (b) {
  eq(b.byteLength, 2, 'arrayBuffer');
}, 'bytes');
later(new Response(new URLSearchParams({a: 'b c'})).text(), function (v) { eq(v, 'a=b+c', 'params body'); }, 'params');
var moved = new Response(s.body, s);
eq([moved.status, moved.headers.get('x-b')], [201, '2'], 'new Response(r.body, r)');
later(moved.text(), function (v) { eq(v, 'hi', 'body handed over'); }, 'handed');
)JS") == "");
}

TEST_CASE("formData() reads urlencoded and multipart bodies", "[js]")
{
	CHECK(run_js(R"JS(
var body = '--XX\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue 1\r\n' +
  '--XX\r\nContent-Disposition: form-data; name="f"; filename="t.txt"\r\nContent-Type: text/plain\r\n\r\nfile\r\nbody\r\n--XX--\r\n';
var r = new Request('http://h/', {method: 'POST', body: body, headers: {'content-type': 'multipart/form-data; boundary=XX'}});
later(r.formData(), function (f) {
  eq(f.get('a'), 'value 1', 'field');
  eq([f.get('f').name, f.get('f').type, f.get('f').size], ['t.txt', 'text/plain', 10], 'file');
}, 'multipart');
var u = new Request('http://h/', {method: 'POST', body: 'x=1&x=2&y=%C3%A9', headers: {'content-type': 'application/x-www-form-urlencoded'}});
later(u.formData(), function (f) { eq([f.getAll('x'), f.get('y')], [['1', '2'], 'é'], 'urlencoded'); }, 'urlencoded');
var fd = new FormData();
fd.append('n', 'v');
var m = new Request('http://h/', {method: 'POST', body: fd});
eq(/^multipart\/form-data; boundary=/.test(m.headers.get('content-type')), true, 'FormData body type');
later(m.formData(), function (f) { eq(f.get('n'), 'v', 'FormData round trip'); }, 'round trip');
)JS") == "");
}

TEST_CASE("Promise: ordering, combinators, thenables", "[js]")
{
	CHECK(run_js(R"JS(
var order = [];
Promise.resolve().then(function () { order.push(2); });
queueMicrotask(function () { order.push(3); });
order.push(1);
later(Promise.resolve().then(function () { return order; }), function (o) { eq(o, [1, 2, 3], 'microtask order'); }, 'order');
later(Promise.all([1, Promise.resolve(2), {then: function (r) { r(3); }}]), function (v) { eq(v, [1, 2, 3], 'all'); }, 'all');
later(Promise.allSettled([Promise.reject(1), 2]), function (v) {
  eq(v, [{status: 'rejected', reason: 1}, {status: 'fulfilled', value: 2}], 'allSettled');
}, 'allSettled');
later(Promise.race([new Promise(function () {}), Promise.resolve('r')]), function (v) { eq(v, 'r', 'race'); }, 'race');
later(Promise.any([Promise.reject(1), Promise.resolve(5)]), function (v) { eq(v, 5, 'any'); }, 'any');
later(Promise.reject(new Error('x')).catch(function (e) { return e.message; }).finally(function () {}),
      function (v) { eq(v, 'x', 'catch and finally'); }, 'catch');
var self = new Promise(function (r) { setTimeoutLike = r; });
var p = Promise.resolve(1);
later(p.then(function () { throw 7; }).then(null, function (e) { return e; }), function (v) { eq(v, 7, 'throw in then'); }, 'throws');
)JS") == "");
}

TEST_CASE("Map, Set and ES2015+ built-ins Duktape lacks", "[js]")
{
	CHECK(run_js(R"JS(
var m = new Map([[1, 'a'], ['1', 'b'], [NaN, 'n']]);
var key = {};
m.set(key, 'o');
eq([m.get(1), m.get('1'), m.get(NaN), m.get(key), m.size], ['a', 'b', 'n', 'o', 4], 'Map keys by SameValueZero');
m.delete('1');
eq(Array.from(m.keys()).length, 3, 'delete');
var s = new Set([1, 2, 2, 3]);
eq([s.size, s.has(2), Array.from(s)], [3, true, [1, 2, 3]], 'Set');
eq(Array.from('héllo'), ['h', 'é', 'l', 'l', 'o'], 'Array.from string');
eq([[1, [2, [3]]].flat(), [1, 2, 3].includes(2), [5, 6].find(function (x) { return x > 5; })],
   [[1, 2, [3]], true, 6], 'array methods');
eq(['a'.padStart(3, '-'), 'b'.padEnd(2, '.'), 'a-b-c'.replaceAll('-', '+'), Object.entries({x: 1})],
   ['--a', 'b.', 'a+b+c', [['x', 1]]], 'string and object methods');
eq(Object.fromEntries(new Map([['k', 'v']])), {k: 'v'}, 'fromEntries of a Map');
eq(structuredClone({a: [1, {b: 2}], d: new Date(0)}).a, [1, {b: 2}], 'structuredClone');
throws(function () { structuredClone(function () {}); }, Error, 'clone of a function');
eq([btoa('hello'), atob('aGVsbG8=')], ['aGVsbG8=', 'hello'], 'base64');
throws(function () { atob('@@'); }, Error, 'bad base64');
eq(new TextDecoder().decode(new TextEncoder().encode('€')), '€', 'TextEncoder round trip');
)JS") == "");
}

TEST_CASE("crypto: random values, UUIDs, digests, HMAC, AES-GCM, timingSafeEqual", "[js]")
{
	CHECK(run_js(R"JS(
var a = crypto.getRandomValues(new Uint8Array(32));
eq(a.length, 32, 'getRandomValues');
throws(function () { crypto.getRandomValues(new Uint8Array(70000)); }, Error, 'quota');
eq(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(crypto.randomUUID()), true, 'uuid v4');
function hex(b) { return Array.from(new Uint8Array(b)).map(function (x) { return (x < 16 ? '0' : '') + x.toString(16); }).join(''); }
var enc = new TextEncoder();
later(crypto.subtle.digest('SHA-256', enc.encode('abc')), function (d) {
  eq(hex(d), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 'sha-256');
}, 'digest');
later(crypto.subtle.importKey('raw', enc.encode('key'), {name: 'HMAC', hash: 'SHA-256'}, false, ['sign', 'verify'])
  .then(function (k) { return crypto.subtle.sign('HMAC', k, enc.encode('The quick brown fox jumps over the lazy dog')); }),
  function (mac) { eq(hex(mac), 'f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8', 'hmac'); }, 'hmac');
later(crypto.subtle.importKey('jwk', {kty: 'oct', k: 'AAAAAAAAAAAAAAAAAAAAAA'}, {name: 'AES-GCM'}, true, ['encrypt', 'decrypt'])
  .then(function (k) {
    var iv = new Uint8Array(12);
    return crypto.subtle.encrypt({name: 'AES-GCM', iv: iv}, k, new Uint8Array(0)).then(function (c) {
      eq(hex(c), '58e2fccefa7e3061367f1d57a4e7455a', 'AES-128-GCM of nothing under zero key and iv');
      var bad = new Uint8Array(c); bad[0] ^= 1;
      return crypto.subtle.decrypt({name: 'AES-GCM', iv: iv}, k, bad).then(function () { return 'opened'; }, function () { return 'refused'; });
    });
  }), function (v) { eq(v, 'refused', 'a wrong tag is refused'); }, 'aes');
eq(crypto.subtle.timingSafeEqual(enc.encode('ab'), enc.encode('ab')), true, 'equal');
eq(crypto.subtle.timingSafeEqual(enc.encode('ab'), enc.encode('ac')), false, 'unequal');
)JS") == "");
}
