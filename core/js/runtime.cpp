#include "js/runtime.hpp"

#include "out/error.hpp"

#include <duktape.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <cstdio>
#include <cstring>

namespace sonic::js {

extern const char kPrelude[]; // prelude_js.cpp, generated from prelude.js

namespace {

constexpr std::chrono::seconds kLoadBudget{2};

Host *host_of(duk_context *ctx)
{
	duk_memory_functions f;
	duk_get_memory_functions(ctx, &f);
	return static_cast<Host *>(static_cast<Heap *>(f.udata)->user);
}

std::string_view bytes_arg(duk_context *ctx, duk_idx_t i)
{
	duk_size_t n = 0;
	void *p = duk_require_buffer_data(ctx, i, &n);
	return {static_cast<const char *>(p), n};
}

// The natives below raise script errors with duk_error(), which longjmps
// out of the function: no C++ object with a destructor may be alive then
// (it would leak, or worse), so each takes its arguments first, writes its
// output straight into a Duktape buffer, and lets its C++ objects go before
// it raises.

void push_bytes(duk_context *ctx, const void *data, size_t n)
{
	void *p = duk_push_fixed_buffer(ctx, n);
	if (n)
		std::memcpy(p, data, n);
	duk_push_buffer_object(ctx, -1, 0, n, DUK_BUFOBJ_UINT8ARRAY);
	duk_remove(ctx, -2);
}

// Pushes a buffer of N bytes for a native to write into; as_bytes() then
// makes the first LEN of them the Uint8Array the script gets.
unsigned char *push_output(duk_context *ctx, size_t n)
{
	return static_cast<unsigned char *>(duk_push_fixed_buffer(ctx, n));
}

void as_bytes(duk_context *ctx, size_t len)
{
	duk_push_buffer_object(ctx, -1, 0, len, DUK_BUFOBJ_UINT8ARRAY);
	duk_remove(ctx, -2);
}

gnutls_digest_algorithm_t digest_of(duk_context *ctx, const char *name)
{
	std::string_view n = name;
	if (n == "SHA-1")
		return GNUTLS_DIG_SHA1;
	if (n == "SHA-256")
		return GNUTLS_DIG_SHA256;
	if (n == "SHA-384")
		return GNUTLS_DIG_SHA384;
	if (n == "SHA-512")
		return GNUTLS_DIG_SHA512;
	if (n == "MD5")
		return GNUTLS_DIG_MD5;
	(void)duk_error(ctx, DUK_ERR_TYPE_ERROR, "NotSupportedError: hash %s", name);
	return GNUTLS_DIG_UNKNOWN;
}

duk_ret_t native_log(duk_context *ctx)
{
	const int level = duk_require_int(ctx, 0);
	duk_size_t n = 0;
	const char *text = duk_safe_to_lstring(ctx, 1, &n);
	if (Host *h = host_of(ctx))
		h->log(level, std::string_view(text, n));
	return 0;
}

duk_ret_t native_random(duk_context *ctx)
{
	const duk_int_t n = duk_require_int(ctx, 0);
	if (n < 0 || n > 65536)
		return duk_error(ctx, DUK_ERR_RANGE_ERROR, "random: 0 to 65536 bytes");
	unsigned char *out = push_output(ctx, static_cast<size_t>(n));
	if (n && gnutls_rnd(GNUTLS_RND_RANDOM, out, static_cast<size_t>(n)) < 0)
		return duk_error(ctx, DUK_ERR_ERROR, "OperationError: no random bytes");
	as_bytes(ctx, static_cast<size_t>(n));
	return 1;
}

duk_ret_t native_digest(duk_context *ctx)
{
	gnutls_digest_algorithm_t alg = digest_of(ctx, duk_require_string(ctx, 0));
	std::string_view data = bytes_arg(ctx, 1);
	unsigned char out[64];
	if (gnutls_hash_fast(alg, data.data(), data.size(), out) < 0)
		return duk_error(ctx, DUK_ERR_ERROR, "OperationError: digest failed");
	push_bytes(ctx, out, gnutls_hash_get_len(alg));
	return 1;
}

duk_ret_t native_hmac(duk_context *ctx)
{
	gnutls_digest_algorithm_t alg = digest_of(ctx, duk_require_string(ctx, 0));
	std::string_view key = bytes_arg(ctx, 1);
	std::string_view data = bytes_arg(ctx, 2);
	unsigned char out[64];
	if (gnutls_hmac_fast(static_cast<gnutls_mac_algorithm_t>(alg), key.data(), key.size(), data.data(), data.size(), out) < 0)
		return duk_error(ctx, DUK_ERR_ERROR, "OperationError: HMAC failed");
	push_bytes(ctx, out, gnutls_hmac_get_len(static_cast<gnutls_mac_algorithm_t>(alg)));
	return 1;
}

// Constant time in the length of the shorter input.
duk_ret_t native_equal(duk_context *ctx)
{
	std::string_view a = bytes_arg(ctx, 0);
	std::string_view b = bytes_arg(ctx, 1);
	unsigned char diff = a.size() == b.size() ? 0 : 1;
	const size_t n = std::min(a.size(), b.size());
	for (size_t i = 0; i < n; i++)
		diff |= static_cast<unsigned char>(a[i] ^ b[i]);
	duk_push_boolean(ctx, diff == 0);
	return 1;
}

// aesgcm(encrypt, key, iv, data, aad, tagBytes): ciphertext||tag, or the
// plaintext; a wrong tag throws OperationError as Web Crypto does.
duk_ret_t native_aesgcm(duk_context *ctx)
{
	const bool encrypt = duk_require_boolean(ctx, 0);
	std::string_view key = bytes_arg(ctx, 1);
	std::string_view iv = bytes_arg(ctx, 2);
	std::string_view data = bytes_arg(ctx, 3);
	std::string_view aad = bytes_arg(ctx, 4);
	const duk_int_t tag = duk_require_int(ctx, 5);
	gnutls_cipher_algorithm_t alg = key.size() == 16 ? GNUTLS_CIPHER_AES_128_GCM
					: key.size() == 24 ? GNUTLS_CIPHER_AES_192_GCM
							   : GNUTLS_CIPHER_AES_256_GCM;
	if (tag < 4 || tag > 16)
		return duk_error(ctx, DUK_ERR_ERROR, "OperationError: tagLength must be 32 to 128 bits");
	if (iv.empty())
		return duk_error(ctx, DUK_ERR_ERROR, "OperationError: AES-GCM needs an iv");
	gnutls_datum_t k{reinterpret_cast<unsigned char *>(const_cast<char *>(key.data())), static_cast<unsigned>(key.size())};
	// The output first: pushing it may throw (the heap's limit), and the
	// cipher handle below must not be open then.
	size_t out_len = data.size() + static_cast<size_t>(tag);
	unsigned char *out = push_output(ctx, out_len);
	gnutls_aead_cipher_hd_t h;
	if (gnutls_aead_cipher_init(&h, alg, &k) < 0)
		return duk_error(ctx, DUK_ERR_ERROR, "OperationError: AES-GCM unavailable");
	int rc = encrypt ? gnutls_aead_cipher_encrypt(h, iv.data(), iv.size(), aad.data(), aad.size(), static_cast<size_t>(tag),
						       data.data(), data.size(), out, &out_len)
			 : gnutls_aead_cipher_decrypt(h, iv.data(), iv.size(), aad.data(), aad.size(), static_cast<size_t>(tag),
						       data.data(), data.size(), out, &out_len);
	gnutls_aead_cipher_deinit(h);
	if (rc < 0)
		return duk_error(ctx, DUK_ERR_ERROR, "OperationError: %s", encrypt ? "encryption failed" : "the data could not be decrypted");
	as_bytes(ctx, out_len);
	return 1;
}

// fetch(requestId, fetchId, method, url, flatHeaders, body|null)
duk_ret_t native_fetch(duk_context *ctx)
{
	const auto request = static_cast<uint64_t>(duk_require_number(ctx, 0));
	const auto id = static_cast<uint64_t>(duk_require_number(ctx, 1));
	const char *method = duk_require_string(ctx, 2);
	const char *url = duk_require_string(ctx, 3);
	const std::string_view body = duk_is_null_or_undefined(ctx, 5) ? std::string_view() : bytes_arg(ctx, 5);
	Host *h = host_of(ctx);
	if (!h)
		return duk_error(ctx, DUK_ERR_ERROR, "fetch() is not available while the script loads");
	Subrequest s;
	s.request = request;
	s.id = id;
	s.method = method;
	s.url = url;
	s.body.assign(body);
	const duk_size_t n = duk_get_length(ctx, 4);
	for (duk_size_t i = 0; i + 1 < n; i += 2) {
		duk_get_prop_index(ctx, 4, static_cast<duk_uarridx_t>(i));
		duk_get_prop_index(ctx, 4, static_cast<duk_uarridx_t>(i + 1));
		s.headers.emplace_back(duk_safe_to_string(ctx, -2), duk_safe_to_string(ctx, -1));
		duk_pop_2(ctx);
	}
	h->fetch(std::move(s));
	return 0;
}

// block(address, ttlSeconds, reason): throws when refused.
duk_ret_t native_block(duk_context *ctx)
{
	const char *addr = duk_require_string(ctx, 0);
	const double ttl = duk_require_number(ctx, 1);
	const char *reason = duk_safe_to_string(ctx, 2);
	Host *h = host_of(ctx);
	if (!h)
		return duk_error(ctx, DUK_ERR_ERROR, "sonic.block() is not available while the script loads");
	if (!(ttl == 0 || (ttl >= 1 && ttl <= 30 * 86400)))
		return duk_error(ctx, DUK_ERR_RANGE_ERROR, "sonic.block: ttl must be 1 s to 30 days");
	char refused[256] = {};
	{
		const std::string why = h->block(addr, static_cast<unsigned>(ttl), reason);
		std::snprintf(refused, sizeof(refused), "%s", why.c_str());
	}
	if (refused[0])
		return duk_error(ctx, DUK_ERR_ERROR, "sonic.block(%s) refused: %s", addr, refused);
	return 0;
}

// facts(requestId): the client's facts, or undefined.
duk_ret_t native_facts(duk_context *ctx)
{
	const auto id = static_cast<uint64_t>(duk_require_number(ctx, 0));
	if (Host *h = host_of(ctx))
		h->push_facts(ctx, id);
	else
		duk_push_undefined(ctx);
	return 1;
}

// The byte sets of plain(): what the URL parser's fast path accepts as it
// is in a path, a query, a fragment, a host (lower case) and a port.
enum PlainSet : unsigned { kPath, kQuery, kFragment, kHost, kDigits, kSets };

struct PlainTable {
	bool in[kSets][256] = {};
	PlainTable()
	{
		auto add = [this](unsigned set, const char *chars) {
			for (const char *c = chars; *c; c++)
				in[set][static_cast<unsigned char>(*c)] = true;
		};
		const char *alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
		add(kPath, alnum);
		add(kPath, "-._~!$&'()*+,;=:@%/");
		add(kQuery, alnum);
		add(kQuery, "-._~!$&()*+,;=:@%/?");
		add(kFragment, alnum);
		add(kFragment, "-._~!$&'()*+,;=:@%/?");
		add(kHost, "abcdefghijklmnopqrstuvwxyz0123456789-.");
		add(kDigits, "0123456789");
	}
};

// plain(string, set): whether every byte of STRING is in SET (PlainSet),
// one table look-up a byte where Duktape's regexp engine takes ~0.1 us.
duk_ret_t native_plain(duk_context *ctx)
{
	static const PlainTable table;
	duk_size_t n = 0;
	const char *s = duk_require_lstring(ctx, 0, &n);
	const duk_uint_t set = duk_require_uint(ctx, 1);
	if (set >= kSets)
		return duk_error(ctx, DUK_ERR_RANGE_ERROR, "plain: no set %u", static_cast<unsigned>(set));
	const bool *in = table.in[set];
	bool ok = true;
	for (duk_size_t i = 0; i < n && ok; i++)
		ok = in[static_cast<unsigned char>(s[i])];
	duk_push_boolean(ctx, ok);
	return 1;
}

void push_natives(duk_context *ctx)
{
	static const duk_function_list_entry natives[] = {
		{"log", native_log, 2},       {"random", native_random, 1}, {"digest", native_digest, 2},
		{"hmac", native_hmac, 3},     {"equal", native_equal, 2},   {"aesgcm", native_aesgcm, 6},
		{"fetch", native_fetch, 6},   {"block", native_block, 3},   {"plain", native_plain, 2},
		{"facts", native_facts, 1},   {nullptr, nullptr, 0},
	};
	duk_push_object(ctx);
	duk_put_function_list(ctx, -1, natives);
}

// "...(line 12)" in Duktape's SyntaxError messages.
int line_of(const std::string &message)
{
	size_t at = message.rfind("(line ");
	return at == std::string::npos ? 0 : std::atoi(message.c_str() + at + 6);
}

std::string first_line(const std::string &s) { return s.substr(0, s.find('\n')); }

} // namespace

std::optional<CompileError> compile_error(const std::string &code, const std::string &name)
{
	Heap heap(0);
	duk_context *ctx = heap.ctx();
	duk_push_lstring(ctx, code.data(), code.size());
	duk_push_lstring(ctx, name.data(), name.size());
	if (duk_pcompile(ctx, 0) == DUK_EXEC_SUCCESS)
		return std::nullopt;
	std::string msg = duk_safe_to_string(ctx, -1);
	return CompileError{line_of(msg), msg};
}

Instance::Instance(std::shared_ptr<const Program> program, Host *host)
	: program_(std::move(program)), heap_(program_->limits.heap_bytes)
{
	heap_.user = host;
	duk_context *ctx = heap_.ctx();
	push_natives(ctx);
	duk_put_global_string(ctx, "__native");
	Heap::Ran r = heap_.run_program(kPrelude, "prelude.js", kLoadBudget);
	if (r.stop != Stop::None)
		throw std::runtime_error("the script prelude failed: " + heap_.error_text());
	duk_pop(ctx);
	duk_push_global_object(ctx);
	duk_del_prop_string(ctx, -1, "__native");
	duk_get_prop_string(ctx, -1, "__sonic");
	sonic_ = duk_get_heapptr(ctx, -1);
	duk_pop_2(ctx);

	duk_push_global_stash(ctx);
	duk_push_lstring(ctx, program_->env_json.data(), program_->env_json.size());
	duk_json_decode(ctx, -1);
	env_ = duk_get_heapptr(ctx, -1);
	duk_put_prop_string(ctx, -2, "env");
	duk_pop(ctx);

	r = heap_.run_program(program_->code, program_->path, program_->limits.cpu * 20);
	if (r.stop != Stop::None) {
		std::string why = r.stop == Stop::Timeout ? "did not finish loading within its CPU limit"
			     : r.stop == Stop::Heap	  ? "exhausted its heap while loading"
							  : heap_.error_text();
		throw usage_error("script", program_->path + ": " + why);
	}
	duk_pop(ctx);
	push_host_call("handlers");
	heap_.call(0, kLoadBudget);
	duk_get_prop_string(ctx, -1, "module");
	const bool module = duk_to_boolean(ctx, -1);
	duk_get_prop_string(ctx, -2, "fetch");
	const int fetch_handlers = duk_to_int(ctx, -1);
	duk_get_prop_string(ctx, -3, "response");
	response_handlers_ = duk_to_int(ctx, -1) > 0;
	duk_get_prop_string(ctx, -4, "exported");
	const bool exported = duk_to_boolean(ctx, -1);
	duk_pop_n(ctx, 5);
	if (exported && !module)
		throw usage_error("script", program_->path + ": its default export has no fetch(request, env, ctx) method");
	if (!module && fetch_handlers == 0 && !response_handlers_)
		throw usage_error("script", program_->path +
						    ": no handler: export default { fetch(request, env, ctx) { ... } } or "
						    "addEventListener('fetch', ...)");
}

void Instance::push_host_call(const char *name)
{
	duk_context *ctx = heap_.ctx();
	duk_push_heapptr(ctx, sonic_);
	duk_get_prop_string(ctx, -1, name);
	duk_remove(ctx, -2);
}

void Instance::push_env() { duk_push_heapptr(heap_.ctx(), env_); }

void Instance::push_finished()
{
	duk_context *ctx = heap_.ctx();
	if (finished_.empty()) {
		duk_push_null(ctx);
		return;
	}
	duk_push_array(ctx);
	for (size_t i = 0; i < finished_.size(); i++) {
		duk_push_number(ctx, static_cast<double>(finished_[i]));
		duk_put_prop_index(ctx, -2, static_cast<duk_uarridx_t>(i));
	}
	finished_.clear();
}

void check_program(const Program &program)
{
	try {
		Instance probe(std::shared_ptr<const Program>(&program, [](const Program *) {}), nullptr);
	} catch (const HeapFatal &e) {
		throw usage_error("script", program.path + ": " + e.what());
	} catch (const Error &) {
		throw; // already says what is wrong, with the script's path
	} catch (const std::exception &e) {
		throw usage_error("script", program.path + ": " + first_line(e.what()));
	}
}

} // namespace sonic::js
