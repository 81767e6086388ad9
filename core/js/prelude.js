// sonic's prelude: the Web platform that Workers scripts expect, in ES5.1
// for Duktape. It runs once in every heap, before the user's script, with
// `native` the host's functions (core/js/bindings.cpp). The host drives it
// through the non-enumerable global __sonic: start a request, drain
// microtasks, read the outcome. Everything here is sonic's own code.
(function (global, native) {
'use strict';

function define(obj, name, value) {
	Object.defineProperty(obj, name, { value: value, writable: true, configurable: true, enumerable: false });
}
function fail(Kind, text) { throw new Kind(text); }
var iteratorSym = Symbol.iterator;

// ---- microtasks: run by the host after every entry into the heap --------
// A job is a function, or a promise reaction: (promise, reaction) pairs are
// queued as they are, without a closure each, since every request runs
// several of them.
var jobs = [];
var jobHead = 0;
function enqueue(fn) { jobs.push(fn, null); }
function drain() {
	while (jobHead < jobs.length) {
		var a = jobs[jobHead], b = jobs[jobHead + 1];
		jobs[jobHead] = jobs[jobHead + 1] = undefined;
		jobHead += 2;
		if (b === null) a(); else if (b === THENABLE) runThenable(a); else react(a, b);
	}
	jobs.length = 0;
	jobHead = 0;
}
define(global, 'queueMicrotask', function queueMicrotask(fn) {
	if (typeof fn !== 'function') fail(TypeError, 'queueMicrotask needs a function');
	enqueue(function () { try { fn(); } catch (e) { report(e); } });
});
function report(e) { native.log(3, 'uncaught in microtask: ' + describe(e)); }
function describe(e) {
	if (e && typeof e === 'object' && e.stack) return String(e.stack);
	return String(e);
}

// ---- Promise (ECMA-262 27.2, host-drained) ---------------------------------
var PENDING = 0, FULFILLED = 1, REJECTED = 2;
var INTERNAL = {};
var THENABLE = {};
function Promise(executor) {
	if (!(this instanceof Promise)) fail(TypeError, 'Promise must be called with new');
	this._state = PENDING;
	this._value = undefined;
	this._reactions = null;
	if (executor === INTERNAL) return;
	if (typeof executor !== 'function') fail(TypeError, 'Promise resolver is not a function');
	var fns = resolvingFunctions(this);
	try { executor(fns.resolve, fns.reject); } catch (e) { fns.reject(e); }
}
// The resolve/reject pair a user's executor (or a thenable) gets.
function resolvingFunctions(p) {
	var done = false;
	return {
		resolve: function (v) { if (done) return; done = true; resolvePromise(p, v); },
		reject: function (r) { if (done) return; done = true; settle(p, REJECTED, r); }
	};
}
function resolvePromise(p, v) {
	if (v === p) return settle(p, REJECTED, new TypeError('a promise cannot resolve to itself'));
	if (v !== null && (typeof v === 'object' || typeof v === 'function')) {
		// Our own promises are adopted directly, without a thenable job.
		if (v instanceof Promise && v.then === promiseThen) {
			addReaction(v, { onFulfilled: undefined, onRejected: undefined, child: p, cap: null });
			return;
		}
		var then;
		try { then = v.then; } catch (e) { return settle(p, REJECTED, e); }
		if (typeof then === 'function') {
			jobs.push({ p: p, v: v, then: then }, THENABLE);
			return;
		}
	}
	settle(p, FULFILLED, v);
}
function runThenable(job) {
	var fns = resolvingFunctions(job.p);
	try { job.then.call(job.v, fns.resolve, fns.reject); } catch (e) { fns.reject(e); }
}
function settle(p, state, value) {
	if (p._state !== PENDING) return;
	p._state = state;
	p._value = value;
	var rs = p._reactions;
	p._reactions = null;
	if (rs === null) return;
	if (rs instanceof Array) { for (var i = 0; i < rs.length; i++) jobs.push(p, rs[i]); }
	else jobs.push(p, rs);
}
function addReaction(p, r) {
	if (p._state !== PENDING) { jobs.push(p, r); return; }
	if (p._reactions === null) p._reactions = r;
	else if (p._reactions instanceof Array) p._reactions.push(r);
	else p._reactions = [p._reactions, r];
}
// A reaction R to settled P: its handler's outcome settles R.child (or
// R.cap, a subclass's resolving functions).
// A reaction with an ARG (the host's own, see outcome()) calls its handler
// with ARG first and has no child.
function react(p, r) {
	var handler = p._state === FULFILLED ? r.onFulfilled : r.onRejected;
	var out, ok = p._state === FULFILLED;
	if (r.arg !== undefined) { handler(r.arg, p._value); return; }
	if (typeof handler !== 'function') {
		out = p._value;
	} else {
		try { out = handler(p._value); ok = true; } catch (e) { out = e; ok = false; }
	}
	if (r.cap) { if (ok) r.cap.resolve(out); else r.cap.reject(out); return; }
	if (ok) resolvePromise(r.child, out); else settle(r.child, REJECTED, out);
}
function promiseThen(onFulfilled, onRejected) {
	var C = this.constructor;
	if (C === Promise || typeof C !== 'function') {
		var child = new Promise(INTERNAL);
		addReaction(this, { onFulfilled: onFulfilled, onRejected: onRejected, child: child, cap: null });
		return child;
	}
	// A subclass makes its own child through its executor.
	var cap = {};
	var made = new C(function (res, rej) { cap.resolve = res; cap.reject = rej; });
	addReaction(this, { onFulfilled: onFulfilled, onRejected: onRejected, child: null, cap: cap });
	return made;
}
define(Promise.prototype, 'then', promiseThen);
define(Promise.prototype, 'catch', function (onRejected) { return this.then(undefined, onRejected); });
define(Promise.prototype, 'finally', function (f) {
	if (typeof f !== 'function') return this.then(f, f);
	return this.then(
		function (v) { return Promise.resolve(f()).then(function () { return v; }); },
		function (e) { return Promise.resolve(f()).then(function () { throw e; }); });
});
define(Promise.prototype, Symbol.toStringTag, 'Promise');
define(Promise, 'resolve', function (v) {
	if (v instanceof Promise && v.constructor === this) return v;
	var p = new Promise(INTERNAL);
	resolvePromise(p, v);
	return p;
});
define(Promise, 'reject', function (e) { var p = new Promise(INTERNAL); settle(p, REJECTED, e); return p; });
function eachOf(iterable, fn) {
	var list = Array.from(iterable);
	for (var i = 0; i < list.length; i++) fn(list[i], i);
	return list.length;
}
define(Promise, 'all', function (iterable) {
	return new Promise(function (res, rej) {
		var out = [], left = 0;
		var n = eachOf(iterable, function (x, i) {
			left++;
			Promise.resolve(x).then(function (v) { out[i] = v; if (--left === 0) res(out); }, rej);
		});
		if (n === 0) res(out);
	});
});
define(Promise, 'allSettled', function (iterable) {
	return new Promise(function (res) {
		var out = [], left = 0;
		var n = eachOf(iterable, function (x, i) {
			left++;
			Promise.resolve(x).then(
				function (v) { out[i] = { status: 'fulfilled', value: v }; if (--left === 0) res(out); },
				function (e) { out[i] = { status: 'rejected', reason: e }; if (--left === 0) res(out); });
		});
		if (n === 0) res(out);
	});
});
define(Promise, 'race', function (iterable) {
	return new Promise(function (res, rej) {
		eachOf(iterable, function (x) { Promise.resolve(x).then(res, rej); });
	});
});
define(Promise, 'any', function (iterable) {
	return new Promise(function (res, rej) {
		var errors = [], left = 0;
		var n = eachOf(iterable, function (x, i) {
			left++;
			Promise.resolve(x).then(res, function (e) {
				errors[i] = e;
				if (--left === 0) { var a = new Error('All promises were rejected'); a.errors = errors; rej(a); }
			});
		});
		if (n === 0) { var a = new Error('All promises were rejected'); a.errors = []; rej(a); }
	});
});
define(global, 'Promise', Promise);

// ---- ES2015+ built-ins Duktape lacks ----------------------------------------
function polyfill(obj, name, fn) { if (!(name in obj)) define(obj, name, fn); }
function arrayIterator(arr, kind) {
	var i = 0;
	var it = {
		next: function () {
			if (arr === undefined || i >= arr.length) { arr = undefined; return { value: undefined, done: true }; }
			var k = i++;
			return { value: kind === 'keys' ? k : kind === 'entries' ? [k, arr[k]] : arr[k], done: false };
		}
	};
	it[iteratorSym] = function () { return this; };
	return it;
}
polyfill(Array.prototype, 'values', function () { return arrayIterator(this, 'values'); });
polyfill(Array.prototype, 'keys', function () { return arrayIterator(this, 'keys'); });
polyfill(Array.prototype, 'entries', function () { return arrayIterator(this, 'entries'); });
if (!Array.prototype[iteratorSym]) define(Array.prototype, iteratorSym, Array.prototype.values);
if (!String.prototype[iteratorSym]) define(String.prototype, iteratorSym, function () {
	return arrayIterator(Array.from(String(this)), 'values');
});
polyfill(Array, 'from', function (src, mapFn, thisArg) {
	var out = [], i;
	if (src == null) fail(TypeError, 'Array.from of null or undefined');
	if (typeof src === 'string') {
		for (i = 0; i < src.length; i++) {
			var c = src.charCodeAt(i);
			if (c >= 0xd800 && c < 0xdc00 && i + 1 < src.length) { out.push(src.substr(i, 2)); i++; }
			else out.push(src.charAt(i));
		}
	} else if (typeof src[iteratorSym] === 'function' && !Array.isArray(src)) {
		var it = src[iteratorSym](), step;
		while (!(step = it.next()).done) out.push(step.value);
	} else {
		for (i = 0; i < (src.length >>> 0); i++) out.push(src[i]);
	}
	if (mapFn) for (i = 0; i < out.length; i++) out[i] = mapFn.call(thisArg, out[i], i);
	return out;
});
polyfill(Array, 'of', function () { return Array.prototype.slice.call(arguments); });
polyfill(Array.prototype, 'find', function (f, t) {
	for (var i = 0; i < this.length; i++) if (f.call(t, this[i], i, this)) return this[i];
	return undefined;
});
polyfill(Array.prototype, 'findIndex', function (f, t) {
	for (var i = 0; i < this.length; i++) if (f.call(t, this[i], i, this)) return i;
	return -1;
});
polyfill(Array.prototype, 'findLast', function (f, t) {
	for (var i = this.length - 1; i >= 0; i--) if (f.call(t, this[i], i, this)) return this[i];
	return undefined;
});
polyfill(Array.prototype, 'includes', function (x, from) {
	for (var i = from || 0; i < this.length; i++) if (this[i] === x || (x !== x && this[i] !== this[i])) return true;
	return false;
});
polyfill(Array.prototype, 'fill', function (v, start, end) {
	var n = this.length;
	var s = start === undefined ? 0 : start < 0 ? Math.max(n + start, 0) : Math.min(start, n);
	var e = end === undefined ? n : end < 0 ? Math.max(n + end, 0) : Math.min(end, n);
	for (var i = s; i < e; i++) this[i] = v;
	return this;
});
polyfill(Array.prototype, 'flat', function (depth) {
	var d = depth === undefined ? 1 : depth;
	var out = [];
	(function walk(a, level) {
		for (var i = 0; i < a.length; i++) {
			if (Array.isArray(a[i]) && level > 0) walk(a[i], level - 1); else if (i in a) out.push(a[i]);
		}
	})(this, d);
	return out;
});
polyfill(Array.prototype, 'flatMap', function (f, t) { return this.map(f, t).flat(1); });
polyfill(Array.prototype, 'at', function (i) { i = Math.trunc(i) || 0; if (i < 0) i += this.length; return this[i]; });
polyfill(String.prototype, 'at', function (i) { i = Math.trunc(i) || 0; if (i < 0) i += this.length; return this.charAt(i) || undefined; });
function pad(s, n, fill, atStart) {
	s = String(s);
	fill = fill === undefined ? ' ' : String(fill);
	if (s.length >= n || fill === '') return s;
	var need = n - s.length, p = '';
	while (p.length < need) p += fill;
	p = p.slice(0, need);
	return atStart ? p + s : s + p;
}
polyfill(String.prototype, 'padStart', function (n, f) { return pad(this, n, f, true); });
polyfill(String.prototype, 'padEnd', function (n, f) { return pad(this, n, f, false); });
polyfill(String.prototype, 'trimStart', function () { return String(this).replace(/^\s+/, ''); });
polyfill(String.prototype, 'trimEnd', function () { return String(this).replace(/\s+$/, ''); });
polyfill(String.prototype, 'replaceAll', function (search, rep) {
	if (search instanceof RegExp) {
		if (!search.global) fail(TypeError, 'replaceAll needs a global RegExp');
		return String(this).replace(search, rep);
	}
	return String(this).split(String(search)).join(typeof rep === 'function' ? rep(String(search)) : rep);
});
polyfill(String.prototype, 'matchAll', function (re) {
	var r = new RegExp(re.source, re.flags !== undefined ? re.flags : (re.global ? 'g' : '') + (re.ignoreCase ? 'i' : '') + (re.multiline ? 'm' : ''));
	if (!r.global) fail(TypeError, 'matchAll needs a global RegExp');
	var out = [], m, s = String(this);
	while ((m = r.exec(s)) !== null) { out.push(m); if (m[0] === '') r.lastIndex++; }
	return arrayIterator(out, 'values');
});
polyfill(String, 'raw', function (strings) {
	var raw = strings.raw, out = '';
	for (var i = 0; i < raw.length; i++) { out += raw[i]; if (i + 1 < raw.length && i + 1 < arguments.length) out += arguments[i + 1]; }
	return out;
});
polyfill(Object, 'entries', function (o) { return Object.keys(o).map(function (k) { return [k, o[k]]; }); });
polyfill(Object, 'values', function (o) { return Object.keys(o).map(function (k) { return o[k]; }); });
polyfill(Object, 'fromEntries', function (it) {
	var o = {};
	Array.from(it).forEach(function (e) { o[e[0]] = e[1]; });
	return o;
});
polyfill(Object, 'hasOwn', function (o, k) { return Object.prototype.hasOwnProperty.call(o, k); });
if (!Symbol.asyncIterator) define(Symbol, 'asyncIterator', Symbol('Symbol.asyncIterator'));

// Map and Set: insertion order, SameValueZero keys. Primitive keys are
// found through a dictionary, objects through a tag on the object.
var keyTag = Symbol('sonic.key');
var nextTag = 1;
function keyOf(k, create) {
	var t = typeof k;
	if (k !== null && (t === 'object' || t === 'function')) {
		if (!Object.prototype.hasOwnProperty.call(k, keyTag)) {
			if (!create) return undefined;
			if (!Object.isExtensible(k)) return 'x' + nextTag++;
			define(k, keyTag, 'o' + nextTag++);
		}
		return k[keyTag];
	}
	if (t === 'number') return k !== k ? 'nan' : 'n' + (k === 0 ? 0 : k);
	return t.charAt(0) + String(k);
}
function Collection() { this._index = Object.create(null); this._keys = []; this._values = []; this._size = 0; }
function makeCollection(name, isMap) {
	function C(iterable) {
		if (!(this instanceof C)) fail(TypeError, name + ' must be called with new');
		Collection.call(this);
		if (iterable != null) {
			var self = this;
			Array.from(iterable).forEach(function (e) {
				if (isMap) self.set(e[0], e[1]); else self.add(e);
			});
		}
	}
	var P = C.prototype;
	Object.defineProperty(P, 'size', { get: function () { return this._size; }, configurable: true });
	define(P, 'has', function (k) { var id = keyOf(k, false); return id !== undefined && id in this._index; });
	define(P, 'delete', function (k) {
		var id = keyOf(k, false);
		if (id === undefined || !(id in this._index)) return false;
		var i = this._index[id];
		delete this._index[id];
		this._keys[i] = this._values[i] = undefined;
		this._keys[i] = removed;
		this._size--;
		return true;
	});
	define(P, 'clear', function () { Collection.call(this); });
	function put(self, k, v) {
		var id = keyOf(k, true);
		if (id in self._index) { self._values[self._index[id]] = v; return; }
		self._index[id] = self._keys.length;
		self._keys.push(k === 0 ? 0 : k);
		self._values.push(v);
		self._size++;
	}
	if (isMap) {
		define(P, 'get', function (k) { var id = keyOf(k, false); return id !== undefined && id in this._index ? this._values[this._index[id]] : undefined; });
		define(P, 'set', function (k, v) { put(this, k, v); return this; });
	} else {
		define(P, 'add', function (k) { put(this, k, k); return this; });
	}
	define(P, 'forEach', function (f, t) {
		for (var i = 0; i < this._keys.length; i++) if (this._keys[i] !== removed) f.call(t, this._values[i], this._keys[i], this);
	});
	function iter(self, kind) {
		var i = 0;
		var it = {
			next: function () {
				while (i < self._keys.length && self._keys[i] === removed) i++;
				if (i >= self._keys.length) return { value: undefined, done: true };
				var k = self._keys[i], v = self._values[i];
				i++;
				return { value: kind === 'keys' ? k : kind === 'values' ? v : [k, v], done: false };
			}
		};
		it[iteratorSym] = function () { return this; };
		return it;
	}
	define(P, 'keys', function () { return iter(this, 'keys'); });
	define(P, 'values', function () { return iter(this, 'values'); });
	define(P, 'entries', function () { return iter(this, isMap ? 'entries' : 'setEntries'); });
	define(P, iteratorSym, isMap ? P.entries : P.values);
	define(P, Symbol.toStringTag, name);
	return C;
}
var removed = Symbol('removed');
define(global, 'Map', makeCollection('Map', true));
define(global, 'Set', makeCollection('Set', false));
function makeWeak(name, isMap) {
	var Base = makeCollection(name, isMap);
	return Base;
}
define(global, 'WeakMap', makeWeak('WeakMap', true));
define(global, 'WeakSet', makeWeak('WeakSet', false));

// ---- bytes and text --------------------------------------------------------
function toBytes(data) {
	if (data instanceof Uint8Array) return data;
	if (data instanceof ArrayBuffer) return new Uint8Array(data);
	if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
	fail(TypeError, 'expected an ArrayBuffer or a typed array');
}
function copyBytes(u8) { var out = new Uint8Array(u8.length); out.set(u8); return out; }
polyfill(Uint8Array.prototype, 'slice', function (s, e) { return copyBytes(this.subarray(s, e)); });
var encoder = new TextEncoder();
var decoder = new TextDecoder();
function utf8(s) { return encoder.encode(String(s)); }
function fromUtf8(b) { return decoder.decode(b); }

var b64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
define(global, 'btoa', function btoa(s) {
	s = String(s);
	var out = '';
	for (var i = 0; i < s.length; i += 3) {
		var a = s.charCodeAt(i), b = s.charCodeAt(i + 1), c = s.charCodeAt(i + 2);
		if (a > 255 || b > 255 || c > 255) fail(Error, "btoa: the string has characters outside of Latin1");
		var n = (a << 16) | ((b || 0) << 8) | (c || 0);
		out += b64.charAt(n >> 18) + b64.charAt((n >> 12) & 63) +
			(i + 1 < s.length ? b64.charAt((n >> 6) & 63) : '=') + (i + 2 < s.length ? b64.charAt(n & 63) : '=');
	}
	return out;
});
define(global, 'atob', function atob(s) {
	s = String(s).replace(/[\t\n\f\r ]/g, '');
	if (s.length % 4 === 0) s = s.replace(/==?$/, '');
	if (s.length % 4 === 1 || /[^A-Za-z0-9+\/]/.test(s)) fail(Error, 'atob: the string is not correctly encoded');
	var out = '', bits = 0, n = 0;
	for (var i = 0; i < s.length; i++) {
		n = (n << 6) | b64.indexOf(s.charAt(i));
		bits += 6;
		if (bits >= 8) { bits -= 8; out += String.fromCharCode((n >> bits) & 255); }
	}
	return out;
});
define(global, 'structuredClone', function structuredClone(v) {
	var seen = new Map();
	function clone(x) {
		if (x === null || typeof x !== 'object') {
			if (typeof x === 'function' || typeof x === 'symbol') fail(Error, 'DataCloneError: ' + typeof x + ' cannot be cloned');
			return x;
		}
		if (seen.has(x)) return seen.get(x);
		var out;
		if (x instanceof Date) out = new Date(x.getTime());
		else if (x instanceof RegExp) out = new RegExp(x.source, (x.global ? 'g' : '') + (x.ignoreCase ? 'i' : '') + (x.multiline ? 'm' : ''));
		else if (x instanceof ArrayBuffer) out = x.slice(0);
		else if (ArrayBuffer.isView(x)) out = new x.constructor(x);
		else if (x instanceof Map) { out = new Map(); seen.set(x, out); x.forEach(function (v2, k) { out.set(clone(k), clone(v2)); }); return out; }
		else if (x instanceof Set) { out = new Set(); seen.set(x, out); x.forEach(function (v2) { out.add(clone(v2)); }); return out; }
		else if (Array.isArray(x)) { out = []; seen.set(x, out); for (var i = 0; i < x.length; i++) out[i] = clone(x[i]); return out; }
		else { out = {}; seen.set(x, out); Object.keys(x).forEach(function (k) { out[k] = clone(x[k]); }); return out; }
		seen.set(x, out);
		return out;
	}
	return clone(v);
});

// ---- console -----------------------------------------------------------------
function show(v, depth) {
	if (typeof v === 'string') return depth ? JSON.stringify(v) : v;
	if (v instanceof Error) return describe(v);
	if (v === null || typeof v !== 'object') return String(v);
	if (depth > 2) return '[Object]';
	try { return JSON.stringify(v); } catch (e) { return String(v); }
}
function logger(level) {
	return function () {
		var parts = [];
		for (var i = 0; i < arguments.length; i++) parts.push(show(arguments[i], 0));
		native.log(level, parts.join(' '));
	};
}
define(global, 'console', {
	debug: logger(0), log: logger(1), info: logger(1), warn: logger(2), error: logger(3), trace: logger(0)
});

// ---- Headers (Fetch standard 5.2) -----------------------------------------
// The list is flat, [lower name, value, lower name, value, ...], which is
// also how the host hands headers over and takes them back: a request's or
// response's headers cost no copy unless a script edits them.
var tokenRe = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Names already checked and lowered, so that the common ones cost one
// property look-up (bounded: emptied when full).
var knownNames = Object.create(null), knownCount = 0;
function headerName(n) {
	n = String(n);
	var lower = knownNames[n];
	if (lower !== undefined) return lower;
	if (!tokenRe.test(n)) fail(TypeError, "'" + n + "' is not a valid header name");
	lower = n.toLowerCase();
	if (++knownCount > 512) { knownNames = Object.create(null); knownCount = 1; }
	knownNames[n] = lower;
	return lower;
}
var crlfNul = /[\0\r\n]/;
function isSpace(c) { return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d; }
function headerValue(v) {
	v = String(v);
	if (v.length && (isSpace(v.charCodeAt(0)) || isSpace(v.charCodeAt(v.length - 1))))
		v = v.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
	if (crlfNul.test(v)) fail(TypeError, 'header value has a NUL, CR or LF');
	return v;
}
function Headers(init) {
	if (!(this instanceof Headers)) fail(TypeError, "Headers must be called with new");
	this._list = [];
	this._guard = 'none';
	this._dirty = false;
	if (init == null) return;
	var self = this;
	if (init instanceof Headers) this._list = init._list.slice();
	else if (Array.isArray(init) || typeof init[iteratorSym] === 'function') {
		Array.from(init).forEach(function (pair) {
			pair = Array.from(pair);
			if (pair.length !== 2) fail(TypeError, 'a header init pair needs a name and a value');
			self.append(pair[0], pair[1]);
		});
	}
	else if (typeof init === 'object') Object.keys(init).forEach(function (k) { self.append(k, init[k]); });
	else fail(TypeError, 'Headers takes an object, an array of pairs or Headers');
	this._dirty = false;
}
function writable(h) { if (h._guard === 'immutable') fail(TypeError, 'these headers are immutable'); }
define(Headers.prototype, 'append', function (n, v) {
	writable(this);
	this._list.push(headerName(n), headerValue(v));
	this._dirty = true;
});
define(Headers.prototype, 'delete', function (n) {
	writable(this);
	n = headerName(n);
	var l = this._list, out = [];
	for (var i = 0; i < l.length; i += 2) if (l[i] !== n) out.push(l[i], l[i + 1]);
	this._list = out;
	this._dirty = true;
});
define(Headers.prototype, 'get', function (n) {
	n = headerName(n);
	var l = this._list, got = null;
	for (var i = 0; i < l.length; i += 2) if (l[i] === n) got = got === null ? l[i + 1] : got + ', ' + l[i + 1];
	return got;
});
define(Headers.prototype, 'getSetCookie', function () {
	var l = this._list, out = [];
	for (var i = 0; i < l.length; i += 2) if (l[i] === 'set-cookie') out.push(l[i + 1]);
	return out;
});
define(Headers.prototype, 'has', function (n) {
	n = headerName(n);
	var l = this._list;
	for (var i = 0; i < l.length; i += 2) if (l[i] === n) return true;
	return false;
});
define(Headers.prototype, 'set', function (n, v) {
	writable(this);
	n = headerName(n);
	v = headerValue(v);
	var l = this._list, at = -1, more = false;
	for (var i = 0; i < l.length; i += 2) {
		if (l[i] !== n) continue;
		if (at < 0) at = i; else { more = true; break; }
	}
	if (at < 0) l.push(n, v);
	else if (!more) l[at + 1] = v;
	else {
		// The first occurrence takes the value; the others go.
		var out = [];
		for (var j = 0; j < l.length; j += 2) {
			if (l[j] !== n) out.push(l[j], l[j + 1]);
			else if (j === at) out.push(n, v);
		}
		this._list = out;
	}
	this._dirty = true;
});
// Sorted and combined, Set-Cookie kept apart (Fetch: "sort and combine").
function sortedPairs(h) {
	var names = [], seen = {}, l = h._list;
	for (var i = 0; i < l.length; i += 2) if (!seen[l[i]]) { seen[l[i]] = true; names.push(l[i]); }
	names.sort();
	var out = [];
	names.forEach(function (n) {
		if (n === 'set-cookie') h.getSetCookie().forEach(function (c) { out.push([n, c]); });
		else out.push([n, h.get(n)]);
	});
	return out;
}
define(Headers.prototype, 'forEach', function (f, t) {
	var self = this;
	sortedPairs(this).forEach(function (e) { f.call(t, e[1], e[0], self); });
});
define(Headers.prototype, 'entries', function () { return arrayIterator(sortedPairs(this), 'values'); });
define(Headers.prototype, 'keys', function () { return arrayIterator(sortedPairs(this).map(function (e) { return e[0]; }), 'values'); });
define(Headers.prototype, 'values', function () { return arrayIterator(sortedPairs(this).map(function (e) { return e[1]; }), 'values'); });
define(Headers.prototype, iteratorSym, Headers.prototype.entries);
define(Headers.prototype, Symbol.toStringTag, 'Headers');
define(global, 'Headers', Headers);
// Headers over a flat [lower name, value, ...] list from the host (names
// lowered by the host), taken as it is.
function headersFromFlat(flat, guard) {
	var h = Object.create(Headers.prototype);
	h._list = flat;
	h._guard = guard || 'none';
	h._dirty = false;
	return h;
}
function flatFromHeaders(h) { return h._list; }

// ---- URLSearchParams and URL (WHATWG URL standard) --------------------------
function percentDecode(s) {
	var bytes = [], i = 0;
	while (i < s.length) {
		var c = s.charAt(i);
		if (c === '%' && /^[0-9A-Fa-f]{2}$/.test(s.substr(i + 1, 2))) { bytes.push(parseInt(s.substr(i + 1, 2), 16)); i += 3; continue; }
		var enc = utf8(c === '+' ? ' ' : c);
		if (c.charCodeAt(0) >= 0xd800 && c.charCodeAt(0) < 0xdc00 && i + 1 < s.length) { enc = utf8(s.substr(i, 2)); i++; }
		for (var j = 0; j < enc.length; j++) bytes.push(enc[j]);
		i++;
	}
	return fromUtf8(new Uint8Array(bytes));
}
function formEncode(s) {
	var b = utf8(s), out = '';
	for (var i = 0; i < b.length; i++) {
		var c = b[i];
		if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2a || c === 0x2d || c === 0x2e || c === 0x5f) out += String.fromCharCode(c);
		else if (c === 0x20) out += '+';
		else out += '%' + (c < 16 ? '0' : '') + c.toString(16).toUpperCase();
	}
	return out;
}
function URLSearchParams(init) {
	if (!(this instanceof URLSearchParams)) fail(TypeError, 'URLSearchParams must be called with new');
	this._list = [];
	this._url = null;
	var self = this;
	if (init == null) return;
	if (init instanceof URLSearchParams) { this._list = init._list.map(function (e) { return [e[0], e[1]]; }); return; }
	if (typeof init === 'object') {
		if (Array.isArray(init) || typeof init[iteratorSym] === 'function') {
			Array.from(init).forEach(function (p) { p = Array.from(p); if (p.length !== 2) fail(TypeError, 'a pair needs a name and a value'); self._list.push([String(p[0]), String(p[1])]); });
		} else Object.keys(init).forEach(function (k) { self._list.push([k, String(init[k])]); });
		return;
	}
	this._parse(String(init));
}
define(URLSearchParams.prototype, '_parse', function (s) {
	if (s.charAt(0) === '?') s = s.slice(1);
	this._list = [];
	var self = this;
	s.split('&').forEach(function (part) {
		if (part === '') return;
		var eq = part.indexOf('=');
		var k = eq < 0 ? part : part.slice(0, eq), v = eq < 0 ? '' : part.slice(eq + 1);
		self._list.push([percentDecode(k), percentDecode(v)]);
	});
});
define(URLSearchParams.prototype, '_update', function () {
	if (!this._url) return;
	var q = this.toString();
	this._url._query = q === '' ? null : q;
});
define(URLSearchParams.prototype, 'append', function (k, v) { this._list.push([String(k), String(v)]); this._update(); });
define(URLSearchParams.prototype, 'delete', function (k, v) {
	k = String(k);
	this._list = this._list.filter(function (e) { return !(e[0] === k && (v === undefined || e[1] === String(v))); });
	this._update();
});
define(URLSearchParams.prototype, 'get', function (k) {
	k = String(k);
	for (var i = 0; i < this._list.length; i++) if (this._list[i][0] === k) return this._list[i][1];
	return null;
});
define(URLSearchParams.prototype, 'getAll', function (k) {
	k = String(k);
	return this._list.filter(function (e) { return e[0] === k; }).map(function (e) { return e[1]; });
});
define(URLSearchParams.prototype, 'has', function (k, v) {
	k = String(k);
	return this._list.some(function (e) { return e[0] === k && (v === undefined || e[1] === String(v)); });
});
define(URLSearchParams.prototype, 'set', function (k, v) {
	k = String(k);
	v = String(v);
	var out = [], placed = false;
	this._list.forEach(function (e) {
		if (e[0] !== k) out.push(e);
		else if (!placed) { out.push([k, v]); placed = true; }
	});
	if (!placed) out.push([k, v]);
	this._list = out;
	this._update();
});
define(URLSearchParams.prototype, 'sort', function () {
	var indexed = this._list.map(function (e, i) { return [e, i]; });
	indexed.sort(function (a, b) { return a[0][0] < b[0][0] ? -1 : a[0][0] > b[0][0] ? 1 : a[1] - b[1]; });
	this._list = indexed.map(function (x) { return x[0]; });
	this._update();
});
define(URLSearchParams.prototype, 'forEach', function (f, t) {
	var self = this;
	this._list.slice().forEach(function (e) { f.call(t, e[1], e[0], self); });
});
define(URLSearchParams.prototype, 'toString', function () {
	return this._list.map(function (e) { return formEncode(e[0]) + '=' + formEncode(e[1]); }).join('&');
});
define(URLSearchParams.prototype, 'entries', function () { return arrayIterator(this._list.map(function (e) { return [e[0], e[1]]; }), 'values'); });
define(URLSearchParams.prototype, 'keys', function () { return arrayIterator(this._list.map(function (e) { return e[0]; }), 'values'); });
define(URLSearchParams.prototype, 'values', function () { return arrayIterator(this._list.map(function (e) { return e[1]; }), 'values'); });
define(URLSearchParams.prototype, iteratorSym, URLSearchParams.prototype.entries);
Object.defineProperty(URLSearchParams.prototype, 'size', { get: function () { return this._list.length; }, configurable: true });
define(global, 'URLSearchParams', URLSearchParams);

var special = { 'http:': 80, 'https:': 443, 'ws:': 80, 'wss:': 443, 'ftp:': 21, 'file:': null };
// Percent-encode sets (URL standard 1.3), as predicates on a code point.
function inC0(c) { return c < 0x20 || c > 0x7e; }
function inFragment(c) { return inC0(c) || c === 0x20 || c === 0x22 || c === 0x3c || c === 0x3e || c === 0x60; }
function inQuery(c) { return inC0(c) || c === 0x20 || c === 0x22 || c === 0x23 || c === 0x3c || c === 0x3e; }
function inSpecialQuery(c) { return inQuery(c) || c === 0x27; }
function inPath(c) { return inQuery(c) || c === 0x3f || c === 0x60 || c === 0x7b || c === 0x7d; }
function inUserinfo(c) { return inPath(c) || c === 0x2f || c === 0x3a || c === 0x3b || c === 0x3d || c === 0x40 || (c >= 0x5b && c <= 0x5e) || c === 0x7c; }
function encodeSet(s, pred) {
	var out = '';
	for (var i = 0; i < s.length; i++) {
		var ch = s.charAt(i), c = s.charCodeAt(i);
		if (c < 0x80 && !pred(c)) { out += ch; continue; }
		if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) { ch = s.substr(i, 2); i++; }
		var b = utf8(ch);
		for (var j = 0; j < b.length; j++) out += '%' + (b[j] < 16 ? '0' : '') + b[j].toString(16).toUpperCase();
	}
	return out;
}
function parseIPv4(host) {
	var parts = host.split('.');
	if (parts[parts.length - 1] === '' && parts.length > 1) parts.pop();
	if (parts.length > 4) return null;
	var nums = [];
	for (var i = 0; i < parts.length; i++) {
		var p = parts[i], n;
		if (p === '') return null;
		if (/^0[xX][0-9A-Fa-f]*$/.test(p)) n = p.length === 2 ? 0 : parseInt(p.slice(2), 16);
		else if (/^0[0-7]+$/.test(p)) n = parseInt(p.slice(1), 8);
		else if (/^(0|[1-9][0-9]*)$/.test(p)) n = parseInt(p, 10);
		else return null;
		nums.push(n);
	}
	for (i = 0; i < nums.length - 1; i++) if (nums[i] > 255) fail(TypeError, 'Invalid URL: bad IPv4 address');
	if (nums[nums.length - 1] >= Math.pow(256, 5 - nums.length)) fail(TypeError, 'Invalid URL: bad IPv4 address');
	var v = nums[nums.length - 1];
	for (i = 0; i < nums.length - 1; i++) v += nums[i] * Math.pow(256, 3 - i);
	return [Math.floor(v / 16777216) % 256, Math.floor(v / 65536) % 256, Math.floor(v / 256) % 256, v % 256].join('.');
}
function parseIPv6(s) {
	var pieces = [0, 0, 0, 0, 0, 0, 0, 0], idx = 0, compress = null, i = 0;
	if (s.charAt(0) === ':') { if (s.charAt(1) !== ':') return null; i = 2; compress = idx = 1; pieces[0] = 0; idx = 0; compress = 0; }
	while (i < s.length) {
		if (idx === 8) return null;
		if (s.charAt(i) === ':') { if (compress !== null) return null; i++; compress = idx; continue; }
		var m = /^[0-9A-Fa-f]{1,4}/.exec(s.slice(i));
		if (!m) return null;
		if (s.charAt(i + m[0].length) === '.') {
			if (idx > 6) return null;
			var v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s.slice(i));
			if (!v4) return null;
			for (var k = 1; k <= 4; k++) if (+v4[k] > 255 || (v4[k].length > 1 && v4[k].charAt(0) === '0')) return null;
			pieces[idx++] = (+v4[1]) * 256 + (+v4[2]);
			pieces[idx++] = (+v4[3]) * 256 + (+v4[4]);
			i = s.length;
			break;
		}
		pieces[idx++] = parseInt(m[0], 16);
		i += m[0].length;
		if (i < s.length) { if (s.charAt(i) !== ':') return null; i++; if (i === s.length) return null; }
	}
	if (compress !== null) {
		var moved = pieces.slice(compress, idx);
		for (var z = compress; z < 8; z++) pieces[z] = 0;
		for (z = 0; z < moved.length; z++) pieces[8 - moved.length + z] = moved[z];
	} else if (idx !== 8) return null;
	// Serialise: the first longest run of two or more zeros becomes '::'.
	var best = -1, bestLen = 1;
	for (i = 0; i < 8; i++) {
		var j = i;
		while (j < 8 && pieces[j] === 0) j++;
		if (j - i > bestLen) { best = i; bestLen = j - i; }
		if (j > i) i = j - 1;
	}
	var out = '';
	for (i = 0; i < 8; i++) {
		if (i === best) { out += i === 0 ? '::' : ':'; i += bestLen - 1; continue; }
		out += pieces[i].toString(16) + (i < 7 ? ':' : '');
	}
	return '[' + out + ']';
}
function parseHost(input, isSpecial) {
	if (input.charAt(0) === '[') {
		if (input.charAt(input.length - 1) !== ']') fail(TypeError, 'Invalid URL: bad IPv6 address');
		var v6 = parseIPv6(input.slice(1, -1));
		if (v6 === null) fail(TypeError, 'Invalid URL: bad IPv6 address');
		return v6;
	}
	if (!isSpecial) {
		if (/[\0\t\n\r #\/:<>?@\[\\\]^|]/.test(input)) fail(TypeError, 'Invalid URL: bad host');
		return encodeSet(input, inC0);
	}
	var host = percentDecode(input.replace(/\+/g, '%2B')).toLowerCase();
	if (host === '' || /[\0\t\n\r #%\/:<>?@\[\\\]^|]/.test(host)) fail(TypeError, 'Invalid URL: bad host');
	if (/[^\x00-\x7f]/.test(host)) fail(TypeError, 'Invalid URL: internationalised host names are not supported');
	var last = host.replace(/\.$/, '').split('.').pop();
	if (/^(\d+|0[xX][0-9A-Fa-f]*)$/.test(last)) {
		var v4 = parseIPv4(host);
		if (v4 === null) fail(TypeError, 'Invalid URL: bad IPv4 address');
		return v4;
	}
	return host;
}
function normalisePath(segments, isSpecial) {
	var out = [];
	for (var i = 0; i < segments.length; i++) {
		var s = segments[i], l = s.toLowerCase();
		var dotdot = l === '..' || l === '.%2e' || l === '%2e.' || l === '%2e%2e';
		var dot = l === '.' || l === '%2e';
		var last = i === segments.length - 1;
		if (dotdot) { if (out.length) out.pop(); if (last) out.push(''); }
		else if (dot) { if (last) out.push(''); }
		else out.push(s);
	}
	return out;
}
function URL(input, base) {
	if (!(this instanceof URL)) fail(TypeError, 'URL must be called with new');
	var b = null;
	if (base !== undefined) b = base instanceof URL ? base : new URL(String(base));
	parseURL(this, String(input), b);
	this._params = null; // made when searchParams is first read
}
// The common case, an absolute http(s) URL already in normal form (lower
// case host, no dot segments, nothing to percent-encode), parsed with
// indexOf and the host's byte-set test (native.plain: 0 path, 1 query,
// 2 fragment, 3 host, 4 digits); anything else takes the full parser below.
var PLAIN_PATH = 0, PLAIN_QUERY = 1, PLAIN_FRAGMENT = 2, PLAIN_HOST = 3, PLAIN_DIGITS = 4;
var numericLabel = /(?:^|\.)(?:\d+|0x[0-9a-f]*)$/;
var canonicalIPv4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
function fastURL(u, s) {
	var start;
	if (s.lastIndexOf('http://', 0) === 0) start = 7;
	else if (s.lastIndexOf('https://', 0) === 0) start = 8;
	else return false;
	var end = s.length;
	var hash = s.indexOf('#', start);
	if (hash >= 0) end = hash;
	var query = s.indexOf('?', start);
	if (query >= end) query = -1;
	var authEnd = s.indexOf('/', start);
	if (authEnd < 0 || authEnd > end || (query >= 0 && authEnd > query)) authEnd = query >= 0 ? query : end;
	var auth = s.substring(start, authEnd);
	var colon = auth.indexOf(':');
	var host = colon < 0 ? auth : auth.substring(0, colon);
	// Labels of [a-z0-9-], none empty.
	if (host === '' || !native.plain(host, PLAIN_HOST) || host.charAt(0) === '.' || host.charAt(host.length - 1) === '.' ||
	    host.indexOf('..') >= 0) return false;
	// Only a host whose last label starts with a digit can be an IPv4 form.
	var last = host.charCodeAt(host.lastIndexOf('.') + 1);
	if (last >= 0x30 && last <= 0x39 && numericLabel.test(host) && !canonicalIPv4.test(host)) return false;
	var port = null;
	if (colon >= 0) {
		var digits = auth.substring(colon + 1);
		if (digits === '' || digits.length > 5 || digits.charAt(0) === '0' || !native.plain(digits, PLAIN_DIGITS)) return false;
		port = +digits;
		if (port > 65535) return false;
	}
	var path = s.substring(authEnd, query >= 0 ? query : end);
	if (path === '') path = '/';
	else if (path.charAt(0) !== '/' || !native.plain(path, PLAIN_PATH) || path.indexOf('/.') >= 0 ||
		 (path.indexOf('%') >= 0 && /%2e/i.test(path))) return false;
	var q = query >= 0 ? s.substring(query + 1, end) : null;
	if (q !== null && !native.plain(q, PLAIN_QUERY)) return false;
	var f = hash >= 0 ? s.substring(hash + 1) : null;
	if (f !== null && !native.plain(f, PLAIN_FRAGMENT)) return false;
	u._scheme = start === 7 ? 'http:' : 'https:';
	u._user = ''; u._pass = ''; u._host = host;
	u._port = port === special[u._scheme] ? null : port;
	u._path = path; u._query = q; u._fragment = f; u._opaque = false;
	return true;
}
function parseURL(u, input, base) {
	if (fastURL(u, input)) return;
	input = input.replace(/^[\0-\x20]+|[\0-\x20]+$/g, '').replace(/[\t\n\r]/g, '');
	var m = /^([A-Za-z][A-Za-z0-9+\-.]*):(.*)$/.exec(input);
	var rest;
	if (m) {
		u._scheme = m[1].toLowerCase() + ':';
		rest = m[2];
		var isSp = u._scheme in special;
		if (isSp && base && base._scheme === u._scheme && !/^[\/\\]/.test(rest)) {
			return relative(u, rest, base);
		}
		if (isSp) rest = rest.replace(/^[\/\\]*/, '//');
		if (rest.slice(0, 2) === '//' || (isSp && rest.slice(0, 2) === '\\\\')) return authorityAndPath(u, rest.slice(2), isSp);
		// An opaque path (mailto:, data:, ...) or a non-special path.
		u._user = ''; u._pass = ''; u._host = null; u._port = null;
		splitTail(u, rest, false);
		if (u._path.charAt(0) === '/') u._path = pathOf(u._path, false);
		else { u._opaque = true; u._path = encodeSet(u._path, inC0); }
		return;
	}
	if (!base) fail(TypeError, 'Invalid URL: ' + input);
	u._scheme = base._scheme;
	return relative(u, input, base);
}
function relative(u, rest, base) {
	var isSp = u._scheme in special;
	if (base._opaque && rest.charAt(0) !== '#') fail(TypeError, 'Invalid URL: cannot be relative to an opaque URL');
	if (rest.slice(0, 2) === '//' || (isSp && /^[\/\\]{2}/.test(rest))) return authorityAndPath(u, rest.slice(2), isSp);
	u._user = base._user; u._pass = base._pass; u._host = base._host; u._port = base._port; u._opaque = base._opaque;
	if (rest === '') { u._path = base._path; u._query = base._query; u._fragment = null; return; }
	if (rest.charAt(0) === '?') { u._path = base._path; splitTail(u, rest, true); return; }
	if (rest.charAt(0) === '#') { u._path = base._path; u._query = base._query; u._fragment = encodeSet(rest.slice(1), inFragment); return; }
	splitTail(u, rest, false);
	var p = u._path;
	if (isSp) p = p.replace(/\\/g, '/');
	if (p.charAt(0) !== '/') {
		var dir = base._path.slice(0, base._path.lastIndexOf('/') + 1);
		p = (dir || '/') + p;
	}
	u._path = pathOf(p, isSp);
}
function splitTail(u, s, queryOnly) {
	var hash = s.indexOf('#');
	u._fragment = hash < 0 ? null : encodeSet(s.slice(hash + 1), inFragment);
	if (hash >= 0) s = s.slice(0, hash);
	var q = s.indexOf('?');
	u._query = q < 0 ? null : encodeSet(s.slice(q + 1), (u._scheme in special) ? inSpecialQuery : inQuery);
	if (!queryOnly) u._path = q < 0 ? s : s.slice(0, q);
}
function pathOf(p, isSp) {
	if (isSp) p = p.replace(/\\/g, '/');
	var segs = p.split('/');
	segs.shift();
	segs = normalisePath(segs.map(function (s) { return encodeSet(s, inPath); }), isSp);
	return '/' + segs.join('/');
}
function authorityAndPath(u, s, isSp) {
	var end = s.search(isSp ? /[\/\\?#]/ : /[\/?#]/);
	var auth = end < 0 ? s : s.slice(0, end);
	var tail = end < 0 ? '' : s.slice(end);
	var at = auth.lastIndexOf('@');
	u._user = ''; u._pass = '';
	if (at >= 0) {
		var cred = auth.slice(0, at);
		auth = auth.slice(at + 1);
		var colon = cred.indexOf(':');
		u._user = encodeSet(colon < 0 ? cred : cred.slice(0, colon), inUserinfo);
		u._pass = colon < 0 ? '' : encodeSet(cred.slice(colon + 1), inUserinfo);
	}
	var hostPart = auth, portPart = null;
	var pm = /^(\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(auth);
	if (pm) { hostPart = pm[1]; portPart = pm[2] === undefined ? null : pm[2]; }
	if (hostPart === '' && isSp && u._scheme !== 'file:') fail(TypeError, 'Invalid URL: no host');
	u._host = hostPart === '' ? '' : parseHost(hostPart, isSp);
	u._port = null;
	if (portPart !== null && portPart !== '') {
		if (!/^\d+$/.test(portPart) || +portPart > 65535) fail(TypeError, 'Invalid URL: bad port');
		var port = +portPart;
		u._port = special[u._scheme] === port ? null : port;
	}
	u._opaque = false;
	splitTail(u, tail, false);
	u._path = u._path === '' ? (isSp ? '/' : '') : pathOf(u._path, isSp);
}
function urlHost(u) { return u._host === null ? '' : u._host + (u._port === null ? '' : ':' + u._port); }
function urlHref(u) {
	var s = u._scheme;
	if (u._host !== null) {
		s += '//';
		if (u._user || u._pass) s += u._user + (u._pass ? ':' + u._pass : '') + '@';
		s += urlHost(u);
	}
	s += u._path;
	if (u._query !== null) s += '?' + u._query;
	if (u._fragment !== null) s += '#' + u._fragment;
	return s;
}
function accessor(name, get, set) {
	Object.defineProperty(URL.prototype, name, { get: get, set: set, enumerable: true, configurable: true });
}
accessor('href', function () { return urlHref(this); }, function (v) { var n = new URL(v); for (var k in n) if (k.charAt(0) === '_' && k !== '_params') this[k] = n[k]; if (this._params) this._params._parse(this._query || ''); });
accessor('origin', function () { return (this._scheme in special) && this._scheme !== 'file:' ? this._scheme + '//' + urlHost(this) : 'null'; });
accessor('protocol', function () { return this._scheme; }, function (v) {
	v = String(v).replace(/:.*$/, '').toLowerCase() + ':';
	if (/^[a-z][a-z0-9+\-.]*:$/.test(v) && ((v in special) === (this._scheme in special))) {
		this._scheme = v;
		if (this._port === special[v]) this._port = null;
	}
});
accessor('username', function () { return this._user; }, function (v) { this._user = encodeSet(String(v), inUserinfo); });
accessor('password', function () { return this._pass; }, function (v) { this._pass = encodeSet(String(v), inUserinfo); });
accessor('host', function () { return urlHost(this); }, function (v) {
	var m = /^(\[[^\]]*\]|[^:\/?#]*)(?::(\d*))?/.exec(String(v));
	if (!m || m[1] === '') return;
	this._host = parseHost(m[1], this._scheme in special);
	if (m[2]) this._port = special[this._scheme] === +m[2] ? null : +m[2];
});
accessor('hostname', function () { return this._host === null ? '' : this._host; }, function (v) {
	var h = String(v).replace(/[:\/?#].*$/, '');
	if (h !== '') this._host = parseHost(h, this._scheme in special);
});
accessor('port', function () { return this._port === null ? '' : String(this._port); }, function (v) {
	v = String(v);
	if (v === '') { this._port = null; return; }
	var m = /^\d+/.exec(v);
	if (m && +m[0] <= 65535) this._port = special[this._scheme] === +m[0] ? null : +m[0];
});
accessor('pathname', function () { return this._path; }, function (v) {
	if (this._opaque) return;
	v = String(v);
	if (v.charAt(0) !== '/') v = '/' + v;
	this._path = pathOf(v, this._scheme in special);
});
accessor('search', function () { return this._query === null || this._query === '' ? '' : '?' + this._query; }, function (v) {
	v = String(v).replace(/^\?/, '');
	this._query = v === '' ? null : encodeSet(v, (this._scheme in special) ? inSpecialQuery : inQuery);
	if (this._params) this._params._parse(this._query || '');
});
accessor('searchParams', function () {
	if (!this._params) {
		this._params = new URLSearchParams(this._query || '');
		this._params._url = this;
	}
	return this._params;
});
accessor('hash', function () { return this._fragment === null || this._fragment === '' ? '' : '#' + this._fragment; }, function (v) {
	v = String(v).replace(/^#/, '');
	this._fragment = v === '' ? null : encodeSet(v, inFragment);
});
define(URL.prototype, 'toString', function () { return this.href; });
define(URL.prototype, 'toJSON', function () { return this.href; });
define(URL, 'canParse', function (u, b) { try { new URL(u, b); return true; } catch (e) { return false; } });
define(global, 'URL', URL);

// ---- Body, Request, Response (Fetch standard 6.4-6.5) ---------------------
// A body is held whole: a string, bytes, or, for a response from the
// origin, a token meaning "the origin's body, streamed by the host".
var ORIGIN_BODY = { origin: true };
function bodyInit(init, headers) {
	if (init === undefined || init === null) return null;
	if (init === ORIGIN_BODY) return init;
	if (typeof init === 'string') { setType(headers, 'text/plain;charset=UTF-8'); return init; }
	if (init instanceof URLSearchParams) { setType(headers, 'application/x-www-form-urlencoded;charset=UTF-8'); return init.toString(); }
	if (init instanceof ArrayBuffer || ArrayBuffer.isView(init)) return copyBytes(toBytes(init));
	if (init instanceof FormData) {
		var boundary = '----sonicFormBoundary' + hex(native.random(8));
		setType(headers, 'multipart/form-data; boundary=' + boundary);
		return encodeMultipart(init, boundary);
	}
	if (init && init._isStream) return init;
	return String(init);
}
function setType(h, t) { if (!h.has('content-type')) h.set('content-type', t); }
function hex(bytes) { var s = ''; for (var i = 0; i < bytes.length; i++) s += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16); return s; }
function bodyBytes(b) { return b === null ? new Uint8Array(0) : typeof b === 'string' ? utf8(b) : b; }
function bodyText(b) { return b === null ? '' : typeof b === 'string' ? b : fromUtf8(b); }
function consume(self) {
	if (self._used) return Promise.reject(new TypeError('Body has already been used'));
	if (self._body === ORIGIN_BODY) return Promise.reject(new TypeError("sonic streams the origin's body to the client; a script cannot read it"));
	if (self._body !== null) self._used = true;
	return Promise.resolve(self._body);
}
function mixBody(P) {
	Object.defineProperty(P, 'bodyUsed', { get: function () { return !!this._used; }, configurable: true });
	Object.defineProperty(P, 'body', { get: function () { return this._body === null ? null : this._stream || (this._stream = { _isStream: true, _owner: this }); }, configurable: true });
	define(P, 'text', function () { return consume(this).then(bodyText); });
	define(P, 'json', function () { return consume(this).then(function (b) { return JSON.parse(bodyText(b)); }); });
	define(P, 'arrayBuffer', function () { return consume(this).then(function (b) { var u = copyBytes(bodyBytes(b)); return u.buffer; }); });
	define(P, 'bytes', function () { return consume(this).then(function (b) { return copyBytes(bodyBytes(b)); }); });
	define(P, 'formData', function () {
		var type = this.headers.get('content-type') || '';
		return consume(this).then(function (b) { return parseForm(type, b); });
	});
	define(P, 'blob', function () { return Promise.reject(new TypeError('Blob is not supported by sonic')); });
}
function takeBody(init) {
	// new Response(other.body) / new Request(url, {body: req.body}): the
	// stream token hands over its owner's body.
	if (init && init._isStream) {
		var owner = init._owner;
		if (owner._used) fail(TypeError, 'Body has already been used');
		owner._used = owner._body !== ORIGIN_BODY;
		return owner._body;
	}
	return undefined;
}

var methods = { DELETE: 1, GET: 1, HEAD: 1, OPTIONS: 1, POST: 1, PUT: 1, PATCH: 0 };
function Request(input, init) {
	if (!(this instanceof Request)) fail(TypeError, 'Request must be called with new');
	init = init || {};
	var src = input instanceof Request ? input : null;
	this._url = src ? src._url : new URL(String(input)).href;
	this._method = src ? src._method : 'GET';
	// new Request(url, request): the incoming request's identity goes with it.
	this._incoming = src ? src._incoming : init instanceof Request ? init._incoming : null;
	if (init.method !== undefined) {
		var m = String(init.method);
		if (!tokenRe.test(m)) fail(TypeError, "'" + m + "' is not a valid method");
		this._method = m.toUpperCase() in methods && methods[m.toUpperCase()] ? m.toUpperCase() : m;
	}
	this._headers = init.headers !== undefined ? new Headers(init.headers) : src ? new Headers(src.headers) : new Headers();
	this._body = null;
	if (init.body !== undefined && init.body !== null) {
		if (this._method === 'GET' || this._method === 'HEAD') fail(TypeError, 'a GET or HEAD request cannot have a body');
		var handed = takeBody(init.body);
		this._body = handed !== undefined ? handed : bodyInit(init.body, this._headers);
	} else if (src && init.body === undefined) {
		if (src._used) fail(TypeError, 'Body has already been used');
		this._body = src._body;
		src._used = src._body !== null;
	}
	this._redirect = init.redirect || (src ? src._redirect : 'follow');
	this._signal = init.signal || null;
	if (init.cf) this.cf = init.cf;
}
function lazyHeaders(self) {
	if (!self._headers) self._headers = headersFromFlat(self._flat, self._guard);
	return self._headers;
}
Object.defineProperty(Request.prototype, 'url', { get: function () { return this._url; }, configurable: true });
Object.defineProperty(Request.prototype, 'method', { get: function () { return this._method; }, configurable: true });
Object.defineProperty(Request.prototype, 'headers', { get: function () { return lazyHeaders(this); }, configurable: true });
Object.defineProperty(Request.prototype, 'redirect', { get: function () { return this._redirect; }, configurable: true });
Object.defineProperty(Request.prototype, 'signal', { get: function () { return this._signal; }, configurable: true });
mixBody(Request.prototype);
define(Request.prototype, 'clone', function () {
	if (this._used) fail(TypeError, 'Body has already been used');
	var r = new Request(this._url, { method: this._method, headers: lazyHeaders(this) });
	r._body = this._body;
	r._incoming = this._incoming;
	return r;
});
define(global, 'Request', Request);

var nullBodyStatus = { 101: 1, 103: 1, 204: 1, 205: 1, 304: 1 };
function Response(body, init) {
	if (!(this instanceof Response)) fail(TypeError, 'Response must be called with new');
	var status;
	if (init instanceof Response && init._status >= 200) {
		// new Response(body, response), the common way to edit a response:
		// its status and text were checked when it was made, and its
		// headers are copied as the host's flat list, made Headers when read.
		status = init._status;
		this._status = status;
		this._statusText = init._statusText;
		this._flat = (init._headers ? init._headers._list : init._flat).slice();
		this._guard = 'none';
		this._headers = null;
	} else {
		init = init || {};
		status = init.status === undefined ? 200 : Number(init.status);
		if (!(status >= 200 && status <= 599) || Math.floor(status) !== status) fail(RangeError, 'status ' + init.status + ' is outside 200-599');
		if (init.statusText !== undefined && /[\r\n]/.test(String(init.statusText))) fail(TypeError, 'statusText has CR or LF');
		if (init.webSocket) fail(TypeError, 'WebSocket responses are not supported by sonic');
		this._status = status;
		this._statusText = init.statusText === undefined ? '' : String(init.statusText);
		this._headers = new Headers(init.headers);
	}
	var handed = takeBody(body);
	this._body = handed !== undefined ? handed : bodyInit(body, lazyHeaders(this));
	if (this._body !== null && nullBodyStatus[status]) fail(TypeError, 'a ' + status + ' response cannot have a body');
	this._type = 'default';
	this._url = '';
	this._redirected = false;
	// new Response(r.body, r): an origin response keeps its head's origin.
	if (body && body._isStream && body._owner._fromOrigin) this._fromOrigin = body._owner._fromOrigin;
}
Object.defineProperty(Response.prototype, 'status', { get: function () { return this._status; }, configurable: true });
Object.defineProperty(Response.prototype, 'statusText', { get: function () { return this._statusText; }, configurable: true });
Object.defineProperty(Response.prototype, 'ok', { get: function () { return this._status >= 200 && this._status < 300; }, configurable: true });
Object.defineProperty(Response.prototype, 'headers', { get: function () { return lazyHeaders(this); }, configurable: true });
Object.defineProperty(Response.prototype, 'redirected', { get: function () { return this._redirected; }, configurable: true });
Object.defineProperty(Response.prototype, 'type', { get: function () { return this._type; }, configurable: true });
Object.defineProperty(Response.prototype, 'url', { get: function () { return this._url; }, configurable: true });
mixBody(Response.prototype);
define(Response.prototype, 'clone', function () {
	if (this._used) fail(TypeError, 'Body has already been used');
	if (this._body === ORIGIN_BODY) fail(TypeError, "sonic streams the origin's body once; an origin response cannot be cloned");
	var r = new Response(null, { status: this._status, statusText: this._statusText, headers: lazyHeaders(this) });
	r._body = this._body;
	return r;
});
define(Response, 'redirect', function (url, status) {
	status = status === undefined ? 302 : status;
	if ([301, 302, 303, 307, 308].indexOf(status) < 0) fail(RangeError, 'redirect status must be 301, 302, 303, 307 or 308');
	var r = new Response(null, { status: status });
	r._headers.set('location', new URL(String(url)).href);
	r._headers._guard = 'immutable';
	return r;
});
define(Response, 'json', function (data, init) {
	init = init || {};
	var h = new Headers(init.headers);
	if (!h.has('content-type')) h.set('content-type', 'application/json');
	return new Response(JSON.stringify(data), { status: init.status, statusText: init.statusText, headers: h });
});
define(Response, 'error', function () {
	var r = new Response(null, { status: 200 });
	r._status = 0;
	r._type = 'error';
	return r;
});
define(global, 'Response', Response);

// ---- FormData: urlencoded and multipart/form-data ------------------------
function FormData() {
	if (!(this instanceof FormData)) fail(TypeError, 'FormData must be called with new');
	this._list = [];
}
define(FormData.prototype, 'append', function (k, v, filename) { this._list.push([String(k), v instanceof Uint8Array || typeof v === 'object' ? v : String(v), filename]); });
define(FormData.prototype, 'set', function (k, v, filename) { this.delete(k); this.append(k, v, filename); });
define(FormData.prototype, 'delete', function (k) { k = String(k); this._list = this._list.filter(function (e) { return e[0] !== k; }); });
define(FormData.prototype, 'get', function (k) { k = String(k); var e = this._list.find(function (x) { return x[0] === k; }); return e ? e[1] : null; });
define(FormData.prototype, 'getAll', function (k) { k = String(k); return this._list.filter(function (x) { return x[0] === k; }).map(function (x) { return x[1]; }); });
define(FormData.prototype, 'has', function (k) { k = String(k); return this._list.some(function (x) { return x[0] === k; }); });
define(FormData.prototype, 'forEach', function (f, t) { var self = this; this._list.forEach(function (e) { f.call(t, e[1], e[0], self); }); });
define(FormData.prototype, 'entries', function () { return arrayIterator(this._list.map(function (e) { return [e[0], e[1]]; }), 'values'); });
define(FormData.prototype, 'keys', function () { return arrayIterator(this._list.map(function (e) { return e[0]; }), 'values'); });
define(FormData.prototype, 'values', function () { return arrayIterator(this._list.map(function (e) { return e[1]; }), 'values'); });
define(FormData.prototype, iteratorSym, FormData.prototype.entries);
define(global, 'FormData', FormData);
// A file part as scripts see it: the few File members that matter here.
function FilePart(bytes, name, type) { this.name = name; this.type = type; this.size = bytes.length; this._bytes = bytes; }
define(FilePart.prototype, 'text', function () { return Promise.resolve(fromUtf8(this._bytes)); });
define(FilePart.prototype, 'arrayBuffer', function () { return Promise.resolve(copyBytes(this._bytes).buffer); });
function encodeMultipart(fd, boundary) {
	var parts = '';
	fd._list.forEach(function (e) {
		parts += '--' + boundary + '\r\nContent-Disposition: form-data; name="' + e[0].replace(/"/g, '%22') + '"';
		if (e[1] instanceof FilePart) parts += '; filename="' + (e[2] || e[1].name).replace(/"/g, '%22') + '"\r\nContent-Type: ' + (e[1].type || 'application/octet-stream') + '\r\n\r\n' + fromUtf8(e[1]._bytes) + '\r\n';
		else parts += '\r\n\r\n' + e[1] + '\r\n';
	});
	return parts + '--' + boundary + '--\r\n';
}
function parseForm(type, body) {
	var fd = new FormData();
	var t = type.toLowerCase();
	if (t.indexOf('application/x-www-form-urlencoded') === 0) {
		new URLSearchParams(bodyText(body)).forEach(function (v, k) { fd.append(k, v); });
		return fd;
	}
	var bm = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(type);
	if (t.indexOf('multipart/form-data') !== 0 || !bm) throw new TypeError('formData() needs a urlencoded or multipart/form-data body');
	var boundary = '--' + (bm[1] || bm[2]);
	// Work on a Latin1 view of the bytes so that binary parts survive.
	var bytes = bodyBytes(body), s = '';
	for (var i = 0; i < bytes.length; i += 8192) s += String.fromCharCode.apply(null, Array.prototype.slice.call(bytes.subarray(i, i + 8192)));
	var pieces = s.split(boundary);
	if (pieces.length < 3) throw new TypeError('multipart body has no parts');
	for (i = 1; i < pieces.length; i++) {
		var p = pieces[i];
		if (p.slice(0, 2) === '--') break;
		p = p.replace(/^\r\n/, '').replace(/\r\n$/, '');
		var split = p.indexOf('\r\n\r\n');
		if (split < 0) throw new TypeError('multipart part without a head');
		var head = p.slice(0, split), content = p.slice(split + 4);
		var name = /name="([^"]*)"/i.exec(head), file = /filename="([^"]*)"/i.exec(head), ct = /content-type:\s*([^\r\n]+)/i.exec(head);
		if (!name) throw new TypeError('multipart part without a name');
		var raw = new Uint8Array(content.length);
		for (var j = 0; j < content.length; j++) raw[j] = content.charCodeAt(j);
		if (file) fd.append(name[1], new FilePart(raw, file[1], ct ? ct[1] : ''), file[1]);
		else fd.append(name[1], fromUtf8(raw));
	}
	return fd;
}

// ---- crypto (Web Crypto, backed by GnuTLS) ----------------------------------
function algName(a) { return String(typeof a === 'string' ? a : a && a.name).toUpperCase(); }
var hashes = { 'SHA-1': 1, 'SHA-256': 1, 'SHA-384': 1, 'SHA-512': 1, 'MD5': 1 };
function hashOf(a) {
	var n = algName(a);
	if (!hashes[n]) fail(Error, 'NotSupportedError: hash ' + n);
	return n;
}
function CryptoKey(type, algorithm, extractable, usages, raw) {
	this.type = type; this.algorithm = algorithm; this.extractable = extractable; this.usages = usages;
	define(this, '_raw', raw);
}
function asPromise(f) { try { return Promise.resolve(f()); } catch (e) { return Promise.reject(e); } }
function fromB64url(s) {
	var bin = atob(String(s).replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4));
	var u = new Uint8Array(bin.length);
	for (var i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
	return u;
}
function toB64url(u) {
	var s = '';
	for (var i = 0; i < u.length; i++) s += String.fromCharCode(u[i]);
	return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
var subtle = {
	digest: function (alg, data) {
		return asPromise(function () { return native.digest(hashOf(alg), copyBytes(toBytes(data))).buffer; });
	},
	importKey: function (format, keyData, algorithm, extractable, usages) {
		return asPromise(function () {
			var name = algName(algorithm), raw;
			if (format === 'raw') raw = copyBytes(toBytes(keyData));
			else if (format === 'jwk') {
				if (keyData.kty !== 'oct') fail(Error, 'NotSupportedError: only oct JWKs (HMAC, AES) are supported');
				raw = fromB64url(keyData.k);
			} else fail(Error, 'NotSupportedError: key format ' + format);
			if (name === 'HMAC') {
				var hash = hashOf(algorithm.hash);
				return new CryptoKey('secret', { name: 'HMAC', hash: { name: hash }, length: raw.length * 8 }, !!extractable, usages, raw);
			}
			if (name === 'AES-GCM') {
				if ([16, 24, 32].indexOf(raw.length) < 0) fail(Error, 'DataError: AES keys are 128, 192 or 256 bits');
				return new CryptoKey('secret', { name: 'AES-GCM', length: raw.length * 8 }, !!extractable, usages, raw);
			}
			fail(Error, 'NotSupportedError: algorithm ' + name);
		});
	},
	exportKey: function (format, key) {
		return asPromise(function () {
			if (!key.extractable) fail(Error, 'InvalidAccessError: key is not extractable');
			if (format === 'raw') return copyBytes(key._raw).buffer;
			if (format === 'jwk') return { kty: 'oct', k: toB64url(key._raw), ext: true, key_ops: key.usages };
			fail(Error, 'NotSupportedError: key format ' + format);
		});
	},
	generateKey: function (algorithm, extractable, usages) {
		return asPromise(function () {
			var name = algName(algorithm);
			var bytes = name === 'HMAC' ? (algorithm.length ? algorithm.length / 8 : 64) : algorithm.length / 8;
			return subtle.importKey('raw', native.random(bytes), algorithm, extractable, usages);
		});
	},
	sign: function (algorithm, key, data) {
		return asPromise(function () {
			if (algName(algorithm) !== 'HMAC' || key.algorithm.name !== 'HMAC') fail(Error, 'NotSupportedError: sign supports HMAC');
			return native.hmac(key.algorithm.hash.name, key._raw, copyBytes(toBytes(data))).buffer;
		});
	},
	verify: function (algorithm, key, signature, data) {
		return subtle.sign(algorithm, key, data).then(function (mac) {
			return native.equal(new Uint8Array(mac), copyBytes(toBytes(signature)));
		});
	},
	encrypt: function (algorithm, key, data) { return aes(true, algorithm, key, data); },
	decrypt: function (algorithm, key, data) { return aes(false, algorithm, key, data); },
	timingSafeEqual: function (a, b) { return native.equal(copyBytes(toBytes(a)), copyBytes(toBytes(b))); }
};
function aes(encrypt, algorithm, key, data) {
	return asPromise(function () {
		if (algName(algorithm) !== 'AES-GCM' || key.algorithm.name !== 'AES-GCM') fail(Error, 'NotSupportedError: encrypt and decrypt support AES-GCM');
		var tag = algorithm.tagLength === undefined ? 128 : algorithm.tagLength;
		var aad = algorithm.additionalData ? copyBytes(toBytes(algorithm.additionalData)) : new Uint8Array(0);
		return native.aesgcm(encrypt, key._raw, copyBytes(toBytes(algorithm.iv)), copyBytes(toBytes(data)), aad, tag / 8).buffer;
	});
}
define(global, 'crypto', {
	subtle: subtle,
	getRandomValues: function (a) {
		if (!ArrayBuffer.isView(a) || a instanceof Float32Array || a instanceof Float64Array) fail(TypeError, 'getRandomValues needs an integer typed array');
		if (a.byteLength > 65536) fail(Error, 'QuotaExceededError: at most 65536 bytes');
		new Uint8Array(a.buffer, a.byteOffset, a.byteLength).set(native.random(a.byteLength));
		return a;
	},
	randomUUID: function () {
		var b = native.random(16);
		b[6] = (b[6] & 0x0f) | 0x40;
		b[8] = (b[8] & 0x3f) | 0x80;
		var h = hex(b);
		return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
	}
});
define(global, 'CryptoKey', CryptoKey);

// ---- fetch and the two script shapes ---------------------------------------
var fetchHandlers = [], responseHandlers = [];
var requests = {}; // host request id -> state
var current = null; // the state of the request the host is running
var fetches = {}, nextFetch = 1;
define(global, 'addEventListener', function addEventListener(type, fn) {
	if (typeof fn !== 'function') fail(TypeError, 'addEventListener needs a function');
	if (type === 'fetch') fetchHandlers.push(fn);
	else if (type === 'response') responseHandlers.push(fn);
	else fail(TypeError, "sonic dispatches 'fetch' and 'response' events, not '" + type + "'");
});
function sameOrigin(a, b) { return a === b || new URL(a).origin === new URL(b).origin; }
define(global, 'fetch', function fetch(input, init) {
	var st = current;
	try {
		var req = input instanceof Request && init === undefined ? input : new Request(input, init);
		if (!st) fail(Error, 'fetch() can only be called while a request is handled');
		if (++st.subrequests > st.maxSubrequests) fail(RangeError, 'too many subrequests (limit ' + st.maxSubrequests + ')');
		// The request being served, to its own origin: the host forwards it
		// down its normal, pooled, streaming path and answers with the
		// origin's head; the body streams to the client afterwards.
		if (!st.originFetch && req._incoming === st.id && sameOrigin(req._url, st.url)) {
			st.originFetch = { request: req, promise: new Promise(INTERNAL), sent: false };
			return st.originFetch.promise;
		}
		var id = nextFetch++;
		var body = req._body === ORIGIN_BODY || req._body === null ? null : bodyBytes(req._body);
		native.fetch(st.id, id, req._method, req._url, flatFromHeaders(req.headers), body);
		return new Promise(function (res, rej) { fetches[id] = { resolve: res, reject: rej, url: req._url }; });
	} catch (e) {
		return Promise.reject(e);
	}
});
function makeIncoming(st, method, url, flat, body) {
	var r = Object.create(Request.prototype);
	r._url = url; r._method = method; r._flat = flat; r._guard = 'none'; r._headers = null;
	r._body = body === null || body === undefined ? null : body;
	r._redirect = 'manual'; r._signal = null; r._incoming = st.id;
	return r;
}
function Context(st) { this._st = st; }
// ST is null once the request is forgotten (its work may still call these).
function waitUntil(st, p) {
	var q = Promise.resolve(p).catch(report);
	if (st) st.waitUntil.push(q);
}
define(Context.prototype, 'waitUntil', function (p) { waitUntil(this._st, p); });
define(Context.prototype, 'passThroughOnException', function () { if (this._st) this._st.passThrough = true; });
// The client's facts (address, listener, TLS) of request ID, asked of the
// host when a script first reads them (event.client, request.sonic): most
// scripts never do. Undefined once the host is done with the request.
function factsFor(id) {
	var st = requests[id];
	if (st && st.facts !== undefined) return st.facts;
	var f = native.facts(id);
	if (st && f !== undefined) st.facts = f;
	return f;
}
Object.defineProperty(Request.prototype, 'sonic', {
	get: function () { return this._incoming === null || this._incoming === undefined ? undefined : factsFor(this._incoming); },
	configurable: true
});
function FetchEvent(st, request) { this.type = 'fetch'; this.request = request; this._st = st; }
Object.defineProperty(FetchEvent.prototype, 'client', { get: function () { return factsFor(this._st.id); }, configurable: true });
function ResponseEvent(st, response) { this.type = 'response'; this.request = st.request; this.response = response; this._id = st.id; }
Object.defineProperty(ResponseEvent.prototype, 'client', { get: function () { return factsFor(this._id); }, configurable: true });
define(FetchEvent.prototype, 'respondWith', function (r) {
	if (this._st.responded) fail(Error, 'respondWith was already called');
	this._st.responded = true;
	outcome(this._st, r);
});
define(FetchEvent.prototype, 'waitUntil', function (p) { waitUntil(this._st.ctx ? this._st : null, p); });
define(FetchEvent.prototype, 'passThroughOnException', function () { this._st.passThrough = true; });
// The handler's VALUE (a Response or a promise of one) decides request ST;
// a reaction of the host's own, so no closures are made per request.
function outcome(st, value) {
	var p = value instanceof Promise && value.then === promiseThen ? value : Promise.resolve(value);
	addReaction(p, { onFulfilled: outcomeFulfilled, onRejected: outcomeRejected, child: null, cap: null, arg: st });
}
function outcomeFulfilled(st, r) {
	if (r instanceof Response) st.response = r;
	else st.error = new TypeError('the handler gave ' + (r === undefined ? 'no Response' : 'something that is not a Response'));
	st.done = true;
}
function outcomeRejected(st, e) { st.error = e; st.done = true; }

// sonic.block(addr, {ttl, reason}): the fw family's blocklist, through the
// worker (rate-limited per script, never-block list honoured, logged).
define(global, 'sonic', {
	block: function (addr, opts) {
		opts = opts || {};
		native.block(String(addr), opts.ttl === undefined ? 0 : Number(opts.ttl), opts.reason === undefined ? '' : String(opts.reason));
		return true;
	}
});

var sonic = {};
define(global, '__sonic', sonic);
// Drops finished request ID, unlinking what would keep it alive in a
// cycle (its Context, its origin fetch's promise), so that reference
// counting frees it at once rather than the next mark-and-sweep.
function forget(id) {
	var st = requests[id];
	if (!st) return;
	delete requests[id];
	if (st.ctx) st.ctx._st = null;
	st.ctx = null;
	st.originFetch = null;
	st.request = null;
	st.response = null;
}
// The host starts request ID: METHOD URL HEADERS (flat) BODY (bytes or
// null) ENV (vars) MAX_SUBREQUESTS, and hands
// over FINISHED, the ids of requests it is done with (or null). Returns
// what run(ID) returns, so that a request decided at once costs one call.
sonic.start = function (id, method, url, flat, body, env, maxSubrequests, finished) {
	if (finished !== null) for (var f = 0; f < finished.length; f++) forget(finished[f]);
	var st = { id: id, url: url, facts: undefined, maxSubrequests: maxSubrequests, subrequests: 0, done: false, response: null,
		   error: null, passThrough: false, responded: false, originFetch: null, waitUntil: [], pass: false,
		   ctx: null, request: null };
	st.ctx = new Context(st);
	requests[id] = st;
	var req = makeIncoming(st, method, url, flat, body);
	st.request = req;
	current = st;
	try {
		var mod = global.__sonic_default;
		if (mod && typeof mod.fetch === 'function') {
			outcome(st, mod.fetch(req, env, st.ctx));
		} else if (fetchHandlers.length) {
			var ev = new FetchEvent(st, req);
			for (var i = 0; i < fetchHandlers.length && !st.responded; i++) fetchHandlers[i].call(global, ev);
			if (!st.responded) { st.pass = true; st.done = true; }
		} else {
			st.pass = true;
			st.done = true;
		}
	} catch (e) {
		st.error = e;
		st.done = true;
	}
	current = null;
	return sonic.run(id);
};
// Runs microtasks with REQUEST's state current (for fetch() limits).
sonic.drain = function (id) {
	current = requests[id] || null;
	try { drain(); } finally { current = null; }
};
// Drains the microtasks for request ID, then returns its result().
sonic.run = function (id) {
	current = requests[id] || null;
	try { drain(); } finally { current = null; }
	return sonic.result(id);
};
// What became of request ID, once it is decided, for the host:
//   {kind: 'pass', method, url, headers|null}           to its origin, as edited
//   {kind: 'origin', method, url, headers}             fetch(request): forward, answer the head
//   {kind: 'respond', status, statusText, headers, body, origin}
//   {kind: 'error', message, passThrough}
//   null: still waiting for a subrequest.
sonic.result = function (id) {
	var st = requests[id];
	if (!st) return { kind: 'error', message: 'no such request', passThrough: false };
	if (!st.done) {
		if (st.originFetch && !st.originFetch.sent) {
			st.originFetch.sent = true;
			var r = st.originFetch.request;
			return { kind: 'origin', method: r._method, url: r._url, headers: r._headers ? flatFromHeaders(r._headers) : null,
				 body: r._body === st.request._body ? undefined : (r._body === null ? null : bodyBytes(r._body)) };
		}
		return null;
	}
	if (st.error !== null) return { kind: 'error', message: describe(st.error), passThrough: st.passThrough };
	if (st.pass) {
		var q = st.request;
		return { kind: 'pass', method: q._method, url: q._url, headers: q._headers && q._headers._dirty ? flatFromHeaders(q._headers) : null };
	}
	var res = st.response;
	var b = res._body;
	// An origin response whose head the script left alone: headers null.
	var same = b === ORIGIN_BODY && (res._headers === null || !res._headers._dirty);
	return { kind: 'respond', status: res._status, statusText: res._statusText,
		 headers: same ? null : flatFromHeaders(lazyHeaders(res)), origin: b === ORIGIN_BODY,
		 body: b === ORIGIN_BODY || b === null ? null : b };
};
// The origin's response head for the request's fetch(request); returns
// what run(ID) returns.
sonic.originResponse = function (id, status, statusText, flat) {
	var st = requests[id];
	if (!st || !st.originFetch) return sonic.run(id);
	var r = Object.create(Response.prototype);
	r._status = status; r._statusText = statusText; r._flat = flat; r._guard = 'none'; r._headers = null;
	r._body = ORIGIN_BODY; r._type = 'basic'; r._url = st.url; r._redirected = false; r._fromOrigin = true;
	resolvePromise(st.originFetch.promise, r);
	return sonic.run(id);
};
sonic.originFailed = function (id, message) {
	var st = requests[id];
	if (st && st.originFetch) settle(st.originFetch.promise, REJECTED, new TypeError('fetch to the origin failed: ' + message));
};
// A subrequest's outcome: OK with {status, statusText, headers, body} or an error text.
sonic.settle = function (fid, ok, value) {
	var f = fetches[fid];
	if (!f) return;
	delete fetches[fid];
	if (!ok) { f.reject(new TypeError('fetch ' + f.url + ' failed: ' + value)); return; }
	var r = new Response(null, { status: value.status < 200 ? 200 : value.status, statusText: value.statusText });
	r._status = value.status;
	r._headers = headersFromFlat(value.headers, 'immutable');
	r._body = value.body;
	r._url = f.url;
	f.resolve(r);
};
// The 'response' event: the origin's head for a request that went to it.
sonic.response = function (id, status, statusText, flat) {
	var st = requests[id];
	if (!st || !responseHandlers.length) return null;
	var r = Object.create(Response.prototype);
	r._status = status; r._statusText = statusText; r._flat = flat; r._guard = 'none'; r._headers = null;
	r._body = ORIGIN_BODY; r._type = 'basic'; r._url = st.url; r._redirected = false;
	var ev = new ResponseEvent(st, r);
	current = st;
	try {
		for (var i = 0; i < responseHandlers.length; i++) responseHandlers[i].call(global, ev);
	} finally { current = null; }
	return { status: r._status, statusText: r._statusText, headers: r._headers && r._headers._dirty ? flatFromHeaders(r._headers) : null };
};
sonic.handlers = function () {
	var mod = global.__sonic_default;
	return { module: !!(mod && typeof mod.fetch === 'function'), fetch: fetchHandlers.length, response: responseHandlers.length,
		 exported: mod !== undefined };
};
sonic.pendingWaits = function (id) { var st = requests[id]; return st ? st.waitUntil.length : 0; };
sonic.compileDefault = function () { return typeof global.__sonic_default; };
})(this, __native);
