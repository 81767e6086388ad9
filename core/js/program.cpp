#include "js/program.hpp"

#include "config/config.hpp"
#include "js/runtime.hpp"
#include "out/error.hpp"
#include "sys/fs.hpp"
#include "sys/process.hpp"

#include <gnutls/crypto.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <regex>

namespace sonic::js {

extern const char kExampleWorker[]; // embedded.cpp, generated from example.js

namespace {

// Run by nodejs: translates the file named last in argv to ES5 for Duktape
// and prints {"code"} or {"error", "line", "column"} as JSON. preset-env
// for an ES5 engine (IE 11's feature set); retainLines keeps every
// statement on its original line, so errors point at the user's source.
// Async functions: when the argument before the file names
// babel-plugin-transform-async-to-promises, they become plain promise
// chains (an await is a .then), which Duktape runs several times faster
// than preset-env's regenerator state machines; regenerator is then left
// only generator functions. Without the plugin ("-"), regenerator does both.
const char kBabelDriver[] = R"JS(
var out;
try {
	var babel = require('@babel/core');
	var argv = process.argv;
	var src = require('fs').readFileSync(argv[argv.length - 1], 'utf8');
	var asyncPlugin = argv[argv.length - 2];
	var r = babel.transformSync(src, {
		babelrc: false, configFile: false, sourceType: 'script', retainLines: true, comments: false,
		plugins: asyncPlugin === '-' ? [] : [[require(asyncPlugin), { inlineHelpers: true }]],
		presets: [[require.resolve('@babel/preset-env'), { targets: { ie: '11' }, modules: false }]]
	});
	out = { code: r.code, version: babel.version };
} catch (e) {
	if (e && e.code === 'MODULE_NOT_FOUND') out = { missing: String(e.message).split('\n')[0] };
	else out = { error: String(e && e.reasonCode ? e.message.replace(/^[^:]*: /, '').replace(/ \(\d+:\d+\)$/, '') : e && e.message || e),
		     line: e && e.loc ? e.loc.line : 0, column: e && e.loc ? e.loc.column + 1 : 0 };
}
process.stdout.write(JSON.stringify(out));
)JS";

// Bumped when the driver's options change, so old cache entries go unused.
// The async plugin's path (or its absence) is part of the key too.
const char kTranslation[] = "babel-preset-env-ie11-retainlines-2";

// Where npm installs babel-plugin-transform-async-to-promises globally
// (packaging/install-deps), or "" when it is not installed.
std::string find_async_plugin()
{
	for (const char *dir : {"/usr/lib/node_modules", "/usr/local/lib/node_modules"}) {
		std::string p = std::string(dir) + "/babel-plugin-transform-async-to-promises";
		if (access((p + "/package.json").c_str(), R_OK) == 0)
			return p;
	}
	return {};
}

std::string sha256_hex(std::string_view a, std::string_view b)
{
	gnutls_hash_hd_t h;
	if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
		throw std::runtime_error("sha256 unavailable");
	gnutls_hash(h, a.data(), a.size());
	gnutls_hash(h, "\n", 1);
	gnutls_hash(h, b.data(), b.size());
	unsigned char d[32];
	gnutls_hash_deinit(h, d);
	static const char hex[] = "0123456789abcdef";
	std::string s;
	for (unsigned char c : d) {
		s += hex[c >> 4];
		s += hex[c & 15];
	}
	return s;
}

std::string find_node()
{
	for (const char *p : {"/usr/bin/node", "/usr/bin/nodejs", "/usr/local/bin/node"})
		if (access(p, X_OK) == 0)
			return p;
	return {};
}

[[noreturn]] void syntax_error(const std::string &path, int line, int column, const std::string &why)
{
	std::string where = path;
	if (line > 0)
		where += ":" + std::to_string(line) + (column > 0 ? ":" + std::to_string(column) : "");
	throw usage_error("script", where + ": " + why);
}

// Babel's translation of SOURCE (ES2015+) to ES5, from the cache when it
// holds one.
std::string translate(const std::string &path, const std::string &source, const std::string &cache_dir, bool &from_cache)
{
	const std::string plugin = find_async_plugin();
	const std::string key = sha256_hex(std::string(kTranslation) + "\n" + plugin, source);
	const std::string cached = cache_dir.empty() ? std::string() : cache_dir + "/" + key + ".js";
	if (!cached.empty())
		if (auto hit = sys::try_read_file(cached)) {
			from_cache = true;
			return *hit;
		}
	const std::string node = find_node();
	if (node.empty())
		throw env_error("script", path + ": this script needs translating to ES5 and nodejs is missing; install "
						 "the Debian packages nodejs and node-babel7");
	char tmpl[] = "/tmp/sonic-script-XXXXXX";
	int fd = mkstemp(tmpl);
	if (fd < 0)
		throw errno_error("translate " + path, errno);
	close(fd);
	const std::string tmp = tmpl;
	sys::Ran ran;
	try {
		sys::write_file_atomic(tmp, source, 0600, false);
		ran = sys::run({node, "-e", kBabelDriver, plugin.empty() ? "-" : plugin, tmp},
			       {"NODE_PATH=/usr/share/nodejs:/usr/lib/nodejs"});
	} catch (...) {
		unlink(tmp.c_str());
		throw;
	}
	unlink(tmp.c_str());
	nlohmann::json out = nlohmann::json::parse(ran.output, nullptr, false);
	if (out.is_discarded() || !out.is_object())
		throw env_error("script", path + ": the translator (nodejs with Babel) failed: " + ran.output.substr(0, 400));
	if (out.contains("missing"))
		throw env_error("script", path + ": this script needs translating to ES5 and Babel is missing (" +
						 out["missing"].get<std::string>() + "); install the Debian package node-babel7");
	if (out.contains("error"))
		syntax_error(path, out.value("line", 0), out.value("column", 0), out["error"].get<std::string>());
	std::string code = out["code"].get<std::string>();
	if (!cached.empty()) {
		try {
			sys::make_dir(cache_dir, 0700);
			sys::write_file_atomic(cached, code, 0600, false);
		} catch (const Error &) {
			// A read-only state dir costs the next load a translation, nothing else.
		}
	}
	return code;
}

} // namespace

std::string rewrite_export_default(std::string source)
{
	static const std::regex re(R"((^|[;}\n])([ \t]*)export[ \t]+default[ \t]+)");
	std::smatch m;
	if (!std::regex_search(source, m, re))
		return source;
	const size_t at = static_cast<size_t>(m.position(0)) + m[1].length() + m[2].length();
	const size_t len = m.length(0) - m[1].length() - m[2].length();
	source.replace(at, len, "var __sonic_default = ");
	return source;
}

std::shared_ptr<const Program> load_source(const std::string &path, std::string source, const LoadOptions &options)
{
	if (source.size() > options.limits.script_bytes)
		throw usage_error("script", path + ": " + std::to_string(source.size()) + " bytes is over the script size limit (" +
						    std::to_string(options.limits.script_bytes) + ", [script_limits] script_bytes)");
	auto p = std::make_shared<Program>();
	p->path = path;
	p->name = path.substr(path.rfind('/') + 1);
	p->limits = options.limits;
	p->env_json = options.env_json;
	p->source = std::move(source);
	p->code = rewrite_export_default(p->source);
	// What Duktape compiles as written needs no translation.
	if (auto error = compile_error(p->code, p->path)) {
		p->code = translate(path, p->code, options.cache_dir, p->from_cache);
		p->translated = true;
		if (auto still = compile_error(p->code, p->path))
			syntax_error(path, still->line, 0, "after translation to ES5: " + still->message);
	}
	check_program(*p);
	return p;
}

std::shared_ptr<const Program> load(const std::string &path, const LoadOptions &options)
{
	if (path.rfind("builtin:", 0) == 0) {
		if (path != "builtin:example.js")
			throw usage_error("script", path + ": no such built-in script (there is builtin:example.js)");
		return load_source(path, kExampleWorker, options);
	}
	auto text = sys::try_read_file(path);
	if (!text)
		throw env_error("script", path + ": cannot read the script: " + errno_name(errno));
	return load_source(path, std::move(*text), options);
}

void load_scripts(config::Config &config, const std::string &state_dir)
{
	LoadOptions o;
	o.limits.cpu = config.script_limits.cpu;
	o.limits.heap_bytes = config.script_limits.heap_bytes;
	o.limits.subrequests = config.script_limits.subrequests;
	o.limits.script_bytes = config.script_limits.script_bytes;
	o.env_json = config.vars_json;
	o.cache_dir = state_dir.empty() ? std::string() : state_dir + "/scripts";
	config.programs.clear();
	for (const std::string &path : config.scripts)
		config.programs.push_back(load(path, o));
}

} // namespace sonic::js
