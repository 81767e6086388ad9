// libFuzzer target: `sonic run`'s TOML configuration loader. Any input ends
// in a configuration that holds together or a sonic::Error (exit 1 with
// FILE:LINE:COL); any other exception would end sonic run with a crash.
#include "config/config.hpp"
#include "out/error.hpp"

#include <cstdio>
#include <cstdlib>
#include <netdb.h>
#include <string>

// Upstream servers given by name are resolved as the config loads. The
// fuzzer gets no name service: a name fails at once, as without DNS.
extern "C" int getaddrinfo(const char *, const char *, const struct addrinfo *, struct addrinfo **res)
{
	*res = nullptr;
	return EAI_NONAME;
}

namespace {

void require(bool ok, const char *what)
{
	if (!ok) {
		std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
		std::abort();
	}
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	using namespace sonic::config;
	Config c;
	try {
		c = load_string(std::string_view(reinterpret_cast<const char *>(data), size), "fuzz.toml");
	} catch (const sonic::Error &e) {
		require(e.kind() == sonic::ErrorKind::Usage, "a bad config is a usage error");
		require(e.reason().rfind("fuzz.toml", 0) == 0 || e.reason().find("fuzz.toml:") != std::string::npos ||
				e.reason().find("cannot resolve") != std::string::npos,
			"a config error names the file");
		return 0;
	}
	require(!c.listeners.empty(), "a config without listeners");
	for (const Listener &l : c.listeners) {
		require(l.address.port != 0, "a listener on port 0");
		require(l.mode != Mode::Tcp || l.upstream < c.upstreams.size(), "a tcp route to no upstream");
		require(parse_host_port(l.address.text(), "fuzz") == l.address, "a listener address does not print back");
	}
	for (const Upstream &u : c.upstreams)
		require(!u.servers.empty(), "an upstream without servers");
	for (const Route &r : c.routes) {
		require(r.upstream < c.upstreams.size(), "a route to no upstream");
		require(!r.path.empty() && r.path[0] == '/', "a route path without /");
		const Route *found = c.route(r.host.empty() || r.host[0] == '*' ? "x" + r.host.substr(r.host.empty() ? 0 : 1)
										 : r.host,
					     r.path);
		require(found != nullptr, "a route does not match its own host and path");
	}
	require(c.worker_count() >= 1, "no workers");
	return 0;
}
