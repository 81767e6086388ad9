// sonic run's configuration: a TOML file (see sonic-run(8) for the schema),
// the command-line shortcuts, or the embedded default. Parsing checks
// everything a proxy needs before binding anything, and every error names
// FILE:LINE:COLUMN.
#pragma once

#include "net/addr.hpp"

#include <chrono>
#include <memory>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::js {
struct Program;
}

namespace sonic::config {

// A script index where none applies (Route::script, Config::script).
constexpr size_t kNoScript = ~size_t(0);

enum class Mode { Reverse, Forward, Transparent, Tcp };

const char *mode_name(Mode mode);
std::optional<Mode> parse_mode(std::string_view name);

// HOST:PORT as written, split: not yet an address (that is net::Endpoint).
// HOST is an IP literal for listeners, and may be a name for upstream
// servers (replaced by its first address when the config is loaded).
// text() prints it as net::host_port prints every ADDR:PORT.
struct HostPort {
	std::string host;
	uint16_t port = 0;
	std::string text() const;
	bool operator==(const HostPort &) const = default;
};

// "127.0.0.1:80", "[::1]:80", "*:80" (every IPv4 address), "name:80".
// Throws a usage error naming WHAT.
HostPort parse_host_port(std::string_view text, const std::string &what);

struct Listener {
	HostPort address;
	Mode mode = Mode::Reverse;
	// transparent: IP_TRANSPARENT, for TPROXY rules; without it the original
	// destination comes from SO_ORIGINAL_DST (iptables REDIRECT).
	bool tproxy = false;
	// tcp (an L4 route): the upstream group, an index into Config::upstreams.
	size_t upstream = 0;
	// Join an address another process listens on (its sockets must allow
	// it: SO_REUSEPORT, same user), as for a binary upgrade that overlaps.
	// Without it such an address is refused.
	bool reuse_port = false;
	// reverse: TLS terminated here (tls = "intercept"), with leaves minted
	// by sonic's CA for the name each client asks for.
	bool tls = false;
	std::string where; // FILE:LINE of its definition
};

// One server of a group: as written, and where it is (a name is resolved
// to its first address when the config is loaded, as nginx does).
struct UpstreamServer {
	HostPort written;
	HostPort address; // an IP literal
	bool operator==(const UpstreamServer &) const = default;
};

struct Upstream {
	std::string name;
	std::vector<UpstreamServer> servers;
	// `tls = true`: the servers speak HTTPS. Verified against the system's
	// roots and [tls] upstream_ca for TLS_NAME when given, else for each
	// server's host as written (a name goes as SNI too; an address is
	// verified as one).
	bool tls = false;
	std::string tls_name;
	// Idle keep-alive connections each worker keeps per server.
	unsigned keepalive = 64;
	// How long a server that refused or timed out is skipped.
	std::chrono::milliseconds fail_timeout{10000};
};

struct Route {
	// Empty: any host. "*.example.com": any subdomain. Lower case, no port.
	std::string host;
	std::string path = "/"; // prefix
	size_t upstream = 0;    // index into Config::upstreams
	size_t script = kNoScript; // index into Config::scripts
};

struct Timeouts {
	std::chrono::milliseconds client_header{10000};
	std::chrono::milliseconds client_body{60000};
	std::chrono::milliseconds client_idle{60000};
	std::chrono::milliseconds upstream_connect{5000};
	std::chrono::milliseconds upstream_response{60000};
	std::chrono::milliseconds upstream_idle{60000};
	std::chrono::milliseconds tunnel_idle{3600000};
	std::chrono::milliseconds drain{10000};
};

struct Limits {
	size_t header_bytes = 16384;
	uint64_t body_bytes = 0; // 0: no limit
	unsigned keepalive_requests = 10000;
	// Client connections open at once in the whole process (0: no limit),
	// an equal share for each worker; past it a new one is closed at once.
	uint64_t max_connections = 0;
	// Client connections open at once from one IP address (0: no limit).
	unsigned max_connections_per_ip = 0;
	// Requests per second from one IP address, a token bucket that holds
	// request_burst_per_ip tokens (0: one second's worth, at least 1). A
	// request past it is answered 503 with Retry-After. 0: no limit.
	double requests_per_second_per_ip = 0;
	double request_burst_per_ip = 0;

	// A worker's share of max_connections (0: no limit).
	uint64_t worker_connections(unsigned workers) const;
	// The bucket size in use: request_burst_per_ip, or its default.
	double burst_per_ip() const;
};

struct HeaderPolicy {
	bool via = true;
	bool x_forwarded_for = true;
	bool forwarded = false;
};

struct AccessLog {
	bool enabled = false;
	std::string path = "-"; // "-": standard output
};

struct Tunnels {
	bool splice = true; // kernel splicing when the splice family is loaded
};

struct Admin {
	bool enabled = false;
	HostPort listen{"127.0.0.1", 9901};
	bool reuse_port = false; // as Listener::reuse_port
};

// [tls]: what forward (after CONNECT) and transparent listeners do with
// TLS. Off: tunnels as bytes, unread (the default). Passthrough: the
// ClientHello is read for the log and counters, the bytes pass untouched.
// Intercept: TLS is terminated with a leaf from sonic's CA and the
// requests run through routes and filters, unless a passthrough rule
// matches (SNI glob or destination prefix).
enum class TlsMode { Off, Passthrough, Intercept };
const char *tls_mode_name(TlsMode mode);
std::optional<TlsMode> parse_tls_mode(std::string_view name);

struct Tls {
	TlsMode mode = TlsMode::Off;
	std::vector<std::string> passthrough_sni; // "*.bank.example", "**.example.org"
	std::vector<net::Cidr> passthrough_dst;
	std::string upstream_ca; // PEM roots for origins besides the system's
	// Not from the file: where the CA and the leaf cache are (--state-dir).
	std::string state_dir = "/var/lib/sonic";
	// Whether any listener terminates TLS (and so needs the CA).
	bool needed(const std::vector<Listener> &listeners) const;
};

// [fw]: what sonic run's scripts may write to the fw blocklist.
struct Fw {
	// Never blocked (besides loopback and the admin listener's peers).
	std::vector<net::Cidr> never_block;
	unsigned blocks_per_minute = 60; // per script
	std::chrono::seconds block_ttl{600}; // when a script gives none
};

// [script_limits]: what each worker script may use.
struct ScriptLimits {
	std::chrono::milliseconds cpu{50}; // per request
	uint64_t heap_bytes = 128u << 20;   // per heap (one per worker and script)
	unsigned subrequests = 50;          // fetch() calls per request
	uint64_t script_bytes = 4u << 20;   // larger sources are refused at load
};

struct Config {
	std::string source; // the file, or "(embedded)" / "(command line)"
	unsigned workers = 0; // 0: one per CPU
	std::vector<Listener> listeners;
	std::vector<Upstream> upstreams;
	// Most specific first: exact hosts, then wildcards, then any host; within
	// each, longest path first. The first match wins.
	std::vector<Route> routes;
	Timeouts timeouts;
	Limits limits;
	HeaderPolicy headers;
	AccessLog access_log;
	Admin admin;
	Tunnels tunnels;
	Fw fw;
	// Worker scripts: paths (resolved against the config file's
	// directory), each loaded once; routes and `script` refer by index.
	std::vector<std::string> scripts;
	// The script for requests whose route names none (and for forward and
	// transparent listeners), or kNoScript.
	size_t script = kNoScript;
	ScriptLimits script_limits;
	// [vars]: every script's `env`, a JSON object.
	std::string vars_json = "{}";
	// The scripts as loaded (js::load_scripts), parallel to `scripts`.
	std::vector<std::shared_ptr<const js::Program>> programs;

	// Adds PATH to `scripts` (once) and returns its index.
	size_t add_script(const std::string &path);
	Tls tls;

	// Every listener (the admin one too) joins its address: --reuse-port.
	void reuse_ports();

	// The route of HOST (lower case, without port) and PATH, or null.
	const Route *route(std::string_view host, std::string_view path) const;
	unsigned worker_count() const;
};

// Reads and checks FILE. Throws: a usage error (exit 1) "FILE:LINE:COL: why"
// for a bad config, an environment error (exit 3) for a missing file.
Config load_file(const std::string &path);
// The same from TEXT, named SOURCE in errors.
Config load_string(std::string_view text, const std::string &source);

// `run --upstream`: ADDR:PORT, http://HOST[:PORT] or https://HOST[:PORT]
// (an HTTPS origin group), as the one-server group "default".
Upstream upstream_from_flag(std::string_view text);
// The command line's shortcut: one listener of MODE on LISTEN, and for
// reverse mode one upstream server that every request goes to.
Config from_flags(Mode mode, const std::string &listen, const std::string &upstream);

// What `sonic run` runs with no argument: a forward proxy on 127.0.0.1:8080.
const char *embedded_default();

} // namespace sonic::config
