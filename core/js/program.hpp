// A worker script as loaded: its source, and the code Duktape runs. Scripts
// in modern syntax (arrow functions, classes, async/await, ...) are
// translated to ES5 at load time by Babel (Debian's node-babel7 under
// nodejs), with line numbers kept, and the output is cached under the
// state directory by content hash, so a reload of an unchanged script
// costs no translation. Programs are immutable and shared by the workers,
// each of which compiles one into its own heap.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sonic::config {
struct Config;
}

namespace sonic::js {

// [script_limits]
struct Limits {
	std::chrono::milliseconds cpu{50}; // per request, all its runs together
	size_t heap_bytes = 128u << 20;     // per heap (worker and script)
	unsigned subrequests = 50;          // fetch() calls per request
	size_t script_bytes = 4u << 20;     // source size refused at load
};

// Counted across workers, shown on /metrics per script.
struct Stats {
	std::atomic<uint64_t> runs{0};
	std::atomic<uint64_t> throws{0};   // threw, or gave no Response
	std::atomic<uint64_t> timeouts{0}; // over the CPU limit
	std::atomic<uint64_t> heaps{0};    // exhausted the heap
	std::atomic<uint64_t> cpu_ns{0};
};

struct Program {
	std::string path;   // as configured, for logs and errors
	std::string name;   // the file's base name, for logs and metrics
	std::string source; // as written
	std::string code;   // what Duktape compiles: ES5, `export default` rewritten
	bool translated = false;
	bool from_cache = false;
	Limits limits;
	// [vars]: the script's `env`, as a JSON object.
	std::string env_json = "{}";
	mutable Stats stats;
};

struct LoadOptions {
	Limits limits;
	std::string env_json = "{}";
	// Where translations are cached ("" : not cached).
	std::string cache_dir;
};

// Reads PATH and makes it runnable. Throws a usage error "PATH:LINE:COL:
// why" for a syntax error (also what `sonic run --check` prints), for a
// script over the size limit or without a handler; an environment error
// naming the package when a translation is needed and Babel is missing.
std::shared_ptr<const Program> load(const std::string &path, const LoadOptions &options);
// The same for SOURCE named PATH (tests).
std::shared_ptr<const Program> load_source(const std::string &path, std::string source, const LoadOptions &options);

// Loads every script CONFIG names into config.programs, with its
// [script_limits] and [vars], caching translations under STATE_DIR/scripts.
void load_scripts(config::Config &config, const std::string &state_dir);

// `export default` at the start of a statement becomes
// `var __sonic_default =` on the same line, so that a module-shaped
// Workers script runs as a classic script.
std::string rewrite_export_default(std::string source);

} // namespace sonic::js
