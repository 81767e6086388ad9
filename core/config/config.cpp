#include "config/config.hpp"

#include "config/toml_guard.hpp"
#include "config/toml_reader.hpp"
#include "sys/fs.hpp"
#include "out/error.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <netdb.h>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <toml++/toml.h>

namespace sonic::config {

// config/default.toml, embedded by the build (embedded_config.cpp).
extern const char kDefaultToml[];

namespace {

std::string lower(std::string_view s)
{
	std::string out(s);
	for (char &c : out)
		if (c >= 'A' && c <= 'Z')
			c = static_cast<char>(c + 32);
	return out;
}

bool is_ip_literal(const std::string &host)
{
	unsigned char buf[16];
	return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// The config file's reader: the shared typed reads, and its endpoints.
class Reader : public TomlReader {
public:
	explicit Reader(std::string source) : TomlReader(std::move(source), "config") {}

	HostPort endpoint(const toml::node &n, const std::string &what, bool listen) const
	{
		if (!n.is_string())
			fail(n, what + " must be a string \"ADDR:PORT\"");
		HostPort e;
		try {
			e = parse_host_port(*n.value<std::string>(), what);
		} catch (const Error &err) {
			fail(n, err.reason());
		}
		if (listen && !is_ip_literal(e.host))
			fail(n, what + " must be an IP address, not a name");
		return e;
	}

	HostPort required_endpoint(const toml::table &t, std::string_view key, const std::string &section,
				   bool listen) const
	{
		const toml::node *n = t.get(key);
		if (!n)
			fail(t, section + " needs '" + std::string(key) + "'");
		return endpoint(*n, "'" + std::string(key) + "'", listen);
	}
};

// The routes, most specific first (see Config::routes).
void sort_routes(std::vector<Route> &routes)
{
	auto rank = [](const Route &r) { return r.host.empty() ? 2 : r.host[0] == '*' ? 1 : 0; };
	std::stable_sort(routes.begin(), routes.end(), [&](const Route &a, const Route &b) {
		if (rank(a) != rank(b))
			return rank(a) < rank(b);
		return a.path.size() > b.path.size();
	});
}

// A server given by name gets its first address now, as nginx does.
UpstreamServer resolve(const HostPort &written, const Reader &r, const toml::node *where)
{
	UpstreamServer s{written, written};
	HostPort &e = s.address;
	if (is_ip_literal(e.host))
		return s;
	addrinfo hints{};
	hints.ai_socktype = SOCK_STREAM;
	addrinfo *res = nullptr;
	int rc = getaddrinfo(e.host.c_str(), nullptr, &hints, &res);
	if (rc != 0 || !res) {
		std::string why = "cannot resolve '" + e.host + "': " + gai_strerror(rc);
		if (where)
			r.fail(*where, why);
		throw usage_error("config", why);
	}
	char buf[INET6_ADDRSTRLEN] = {};
	if (res->ai_family == AF_INET)
		inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in *>(res->ai_addr)->sin_addr, buf, sizeof(buf));
	else
		inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6 *>(res->ai_addr)->sin6_addr, buf, sizeof(buf));
	freeaddrinfo(res);
	e.host = buf;
	return s;
}

Config build(const toml::table &root, const std::string &source)
{
	Reader r(source);
	Config c;
	c.source = source;
	r.check_keys(root,
		     {"workers", "listener", "upstream", "route", "timeouts", "limits", "headers", "access_log", "admin",
		      "tunnels", "fw", "script", "script_limits", "vars", "tls"},
		     "");
	// Scripts are found next to the config file when named relatively.
	const std::string dir = source.find('/') == std::string::npos ? std::string() : source.substr(0, source.rfind('/') + 1);
	auto script_path = [&](const toml::table &t) -> std::optional<size_t> {
		auto p = r.string(t, "script");
		if (!p)
			return std::nullopt;
		if (p->empty())
			r.fail(*t.get("script"), "'script' must name a JavaScript file");
		std::string path = (*p)[0] == '/' || p->rfind("builtin:", 0) == 0 || source.front() == '(' ? *p : dir + *p;
		return c.add_script(path);
	};
	if (auto s = script_path(root))
		c.script = *s;
	if (auto w = r.integer(root, "workers", 0, 1024))
		c.workers = static_cast<unsigned>(*w);

	std::map<std::string, size_t> upstream_index;
	for (const toml::table *t : r.tables(root, "upstream")) {
		r.check_keys(*t, {"name", "servers", "keepalive", "fail_timeout", "tls", "tls_name"}, "[[upstream]]");
		Upstream u;
		auto name = r.string(*t, "name");
		if (!name || name->empty())
			r.fail(*t, "[[upstream]] needs a 'name'");
		u.name = *name;
		if (upstream_index.count(u.name))
			r.fail(*t->get("name"), "upstream '" + u.name + "' defined twice");
		const toml::node *servers = t->get("servers");
		if (!servers || !servers->is_array() || servers->as_array()->empty())
			r.fail(servers ? *servers : static_cast<const toml::node &>(*t),
			       "upstream '" + u.name + "' needs 'servers', a non-empty array of \"ADDR:PORT\"");
		for (const toml::node &s : *servers->as_array())
			u.servers.push_back(resolve(r.endpoint(s, "a server", false), r, &s));
		u.tls = r.boolean(*t, "tls").value_or(false);
		if (auto tls_name = r.string(*t, "tls_name")) {
			if (!u.tls)
				r.fail(*t->get("tls_name"), "'tls_name' goes with 'tls = true'");
			if (tls_name->empty())
				r.fail(*t->get("tls_name"), "'tls_name' is empty");
			u.tls_name = *tls_name;
		}
		if (auto k = r.integer(*t, "keepalive", 0, 100000))
			u.keepalive = static_cast<unsigned>(*k);
		if (auto f = r.duration(*t, "fail_timeout"))
			u.fail_timeout = *f;
		upstream_index[u.name] = c.upstreams.size();
		c.upstreams.push_back(std::move(u));
	}

	auto find_upstream = [&](const toml::table &t, const std::string &section) {
		auto name = r.string(t, "upstream");
		if (!name)
			r.fail(t, section + " needs 'upstream'");
		auto it = upstream_index.find(*name);
		if (it == upstream_index.end())
			r.fail(*t.get("upstream"), "no upstream named '" + *name + "'");
		return it->second;
	};

	for (const toml::table *t : r.tables(root, "listener")) {
		r.check_keys(*t, {"address", "mode", "tproxy", "reuse_port", "tls"}, "[[listener]]");
		Listener l;
		l.address = r.required_endpoint(*t, "address", "[[listener]]", true);
		l.where = r.at(*t);
		l.reuse_port = r.boolean(*t, "reuse_port").value_or(false);
		if (auto m = r.string(*t, "mode")) {
			auto mode = parse_mode(*m);
			if (!mode || *mode == Mode::Tcp)
				r.fail(*t->get("mode"), "mode must be reverse, forward or transparent");
			l.mode = *mode;
		}
		// Transparent listeners take every way of steering by default;
		// tproxy = false leaves out IP_TRANSPARENT (REDIRECT and cgroup
		// steering only, no CAP_NET_ADMIN needed).
		l.tproxy = l.mode == Mode::Transparent;
		if (auto tp = r.boolean(*t, "tproxy")) {
			if (l.mode != Mode::Transparent && *tp)
				r.fail(*t->get("tproxy"), "tproxy goes with mode = \"transparent\"");
			l.tproxy = *tp;
		}
		if (auto tl = r.string(*t, "tls")) {
			if (*tl != "intercept" && *tl != "off")
				r.fail(*t->get("tls"), "tls must be \"intercept\" or \"off\"");
			if (*tl == "intercept" && l.mode != Mode::Reverse)
				r.fail(*t->get("tls"), "a listener's tls = \"intercept\" goes with mode = \"reverse\"; "
						       "forward and transparent listeners follow [tls] mode");
			l.tls = *tl == "intercept";
		}
		c.listeners.push_back(l);
	}

	for (const toml::table *t : r.tables(root, "route")) {
		auto protocol = r.string(*t, "protocol").value_or("http");
		if (protocol == "tcp") {
			r.check_keys(*t, {"protocol", "listen", "upstream", "reuse_port"}, "a tcp [[route]]");
			Listener l;
			l.mode = Mode::Tcp;
			l.address = r.required_endpoint(*t, "listen", "a tcp [[route]]", true);
			l.upstream = find_upstream(*t, "[[route]]");
			l.reuse_port = r.boolean(*t, "reuse_port").value_or(false);
			l.where = r.at(*t);
			c.listeners.push_back(l);
			continue;
		}
		if (protocol != "http")
			r.fail(*t->get("protocol"), "protocol must be \"http\" or \"tcp\"");
		r.check_keys(*t, {"protocol", "host", "path", "upstream", "script"}, "[[route]]");
		Route route;
		route.host = lower(r.string(*t, "host").value_or(""));
		if (route.host == "*")
			route.host.clear();
		if (!route.host.empty() && route.host.find('*') != std::string::npos &&
		    (route.host.rfind("*.", 0) != 0 || route.host.find('*', 1) != std::string::npos))
			r.fail(*t->get("host"), "host wildcards are written \"*.example.com\"");
		route.path = r.string(*t, "path").value_or("/");
		if (route.path.empty() || route.path[0] != '/')
			r.fail(*t->get("path"), "path must start with '/'");
		route.upstream = find_upstream(*t, "[[route]]");
		if (auto sc = script_path(*t))
			route.script = *sc;
		c.routes.push_back(route);
	}
	sort_routes(c.routes);

	if (const toml::table *t = r.table(root, "timeouts")) {
		r.check_keys(*t,
			     {"client_header", "client_body", "client_idle", "upstream_connect", "upstream_response",
			      "upstream_idle", "tunnel_idle", "drain"},
			     "[timeouts]");
		Timeouts &to = c.timeouts;
		for (auto [key, field] : {std::pair{"client_header", &to.client_header}, {"client_body", &to.client_body},
					  {"client_idle", &to.client_idle}, {"upstream_connect", &to.upstream_connect},
					  {"upstream_response", &to.upstream_response},
					  {"upstream_idle", &to.upstream_idle}, {"tunnel_idle", &to.tunnel_idle},
					  {"drain", &to.drain}})
			if (auto d = r.duration(*t, key))
				*field = *d;
	}
	if (const toml::table *t = r.table(root, "limits")) {
		r.check_keys(*t,
			     {"header_bytes", "body_bytes", "keepalive_requests", "max_connections", "max_connections_per_ip",
			      "requests_per_second_per_ip", "request_burst_per_ip"},
			     "[limits]");
		if (auto v = r.integer(*t, "header_bytes", 1024, 1 << 20))
			c.limits.header_bytes = static_cast<size_t>(*v);
		if (auto v = r.integer(*t, "body_bytes", 0, INT64_MAX))
			c.limits.body_bytes = static_cast<uint64_t>(*v);
		if (auto v = r.integer(*t, "keepalive_requests", 1, 100000000))
			c.limits.keepalive_requests = static_cast<unsigned>(*v);
		if (auto v = r.integer(*t, "max_connections", 0, 100000000))
			c.limits.max_connections = static_cast<uint64_t>(*v);
		if (auto v = r.integer(*t, "max_connections_per_ip", 0, 65535))
			c.limits.max_connections_per_ip = static_cast<unsigned>(*v);
		if (auto v = r.number(*t, "requests_per_second_per_ip", 0, 1000000))
			c.limits.requests_per_second_per_ip = *v;
		if (auto v = r.number(*t, "request_burst_per_ip", 1, 1000000)) {
			if (c.limits.requests_per_second_per_ip == 0)
				r.fail(*t->get("request_burst_per_ip"), "request_burst_per_ip goes with requests_per_second_per_ip");
			c.limits.request_burst_per_ip = *v;
		}
	}
	if (const toml::table *t = r.table(root, "script_limits")) {
		r.check_keys(*t, {"cpu", "heap_bytes", "subrequests", "script_bytes"}, "[script_limits]");
		if (auto d = r.duration(*t, "cpu")) {
			if (d->count() < 1 || d->count() > 60000)
				r.fail(*t->get("cpu"), "'cpu' must be from 1ms to 60s");
			c.script_limits.cpu = *d;
		}
		if (auto v = r.integer(*t, "heap_bytes", 1 << 20, int64_t(64) << 30))
			c.script_limits.heap_bytes = static_cast<uint64_t>(*v);
		if (auto v = r.integer(*t, "subrequests", 0, 10000))
			c.script_limits.subrequests = static_cast<unsigned>(*v);
		if (auto v = r.integer(*t, "script_bytes", 1, int64_t(1) << 30))
			c.script_limits.script_bytes = static_cast<uint64_t>(*v);
	}
	if (const toml::table *t = r.table(root, "vars")) {
		nlohmann::json vars = nlohmann::json::object();
		for (const auto &[key, node] : *t) {
			if (node.is_string())
				vars[std::string(key.str())] = *node.value<std::string>();
			else if (node.is_integer())
				vars[std::string(key.str())] = *node.value<int64_t>();
			else if (node.is_floating_point())
				vars[std::string(key.str())] = *node.value<double>();
			else if (node.is_boolean())
				vars[std::string(key.str())] = *node.value<bool>();
			else
				r.fail(node, "[vars] values are strings, numbers or booleans");
		}
		c.vars_json = vars.dump();
	}
	if (const toml::table *t = r.table(root, "headers")) {
		r.check_keys(*t, {"via", "x_forwarded_for", "forwarded"}, "[headers]");
		c.headers.via = r.boolean(*t, "via").value_or(c.headers.via);
		c.headers.x_forwarded_for = r.boolean(*t, "x_forwarded_for").value_or(c.headers.x_forwarded_for);
		c.headers.forwarded = r.boolean(*t, "forwarded").value_or(c.headers.forwarded);
	}
	if (const toml::table *t = r.table(root, "access_log")) {
		r.check_keys(*t, {"enabled", "path"}, "[access_log]");
		c.access_log.enabled = r.boolean(*t, "enabled").value_or(true);
		c.access_log.path = r.string(*t, "path").value_or("-");
		if (c.access_log.path.empty())
			r.fail(*t->get("path"), "path must be a file or \"-\" (standard output)");
	}
	if (const toml::table *t = r.table(root, "tunnels")) {
		r.check_keys(*t, {"splice"}, "[tunnels]");
		c.tunnels.splice = r.boolean(*t, "splice").value_or(c.tunnels.splice);
	}
	if (const toml::table *t = r.table(root, "fw")) {
		r.check_keys(*t, {"never_block", "blocks_per_minute", "block_ttl"}, "[fw]");
		if (const toml::node *n = t->get("never_block")) {
			if (!n->is_array())
				r.fail(*n, "'never_block' must be an array of addresses or prefixes");
			for (const toml::node &e : *n->as_array()) {
				if (!e.is_string())
					r.fail(e, "'never_block' must be an array of addresses or prefixes");
				try {
					c.fw.never_block.push_back(net::parse_cidr(*e.value<std::string>()));
				} catch (const Error &err) {
					r.fail(e, err.what());
				}
			}
		}
		if (auto n = r.integer(*t, "blocks_per_minute", 1, 1000000))
			c.fw.blocks_per_minute = static_cast<unsigned>(*n);
		if (auto d = r.duration(*t, "block_ttl")) {
			if (d->count() < 1000)
				r.fail(*t->get("block_ttl"), "'block_ttl' must be at least one second");
			c.fw.block_ttl = std::chrono::duration_cast<std::chrono::seconds>(*d);
		}
	}
	if (const toml::table *t = r.table(root, "tls")) {
		r.check_keys(*t, {"mode", "passthrough_sni", "passthrough_dst", "upstream_ca"}, "[tls]");
		if (auto m = r.string(*t, "mode")) {
			auto mode = parse_tls_mode(*m);
			if (!mode)
				r.fail(*t->get("mode"), "mode must be \"intercept\", \"passthrough\" or \"off\"");
			c.tls.mode = *mode;
		}
		auto strings = [&](const char *key, const char *what, auto add) {
			const toml::node *n = t->get(key);
			if (!n)
				return;
			if (!n->is_array())
				r.fail(*n, std::string("'") + key + "' must be an array of " + what);
			for (const toml::node &e : *n->as_array()) {
				if (!e.is_string() || e.value<std::string>()->empty())
					r.fail(e, std::string("'") + key + "' must be an array of " + what);
				try {
					add(*e.value<std::string>());
				} catch (const Error &err) {
					r.fail(e, err.what());
				}
			}
		};
		strings("passthrough_sni", "name globs", [&](const std::string &g) { c.tls.passthrough_sni.push_back(lower(g)); });
		strings("passthrough_dst", "addresses or prefixes",
			[&](const std::string &p) { c.tls.passthrough_dst.push_back(net::parse_cidr(p)); });
		c.tls.upstream_ca = r.string(*t, "upstream_ca").value_or("");
	}
	if (const toml::table *t = r.table(root, "admin")) {
		r.check_keys(*t, {"enabled", "listen", "reuse_port"}, "[admin]");
		c.admin.enabled = r.boolean(*t, "enabled").value_or(true);
		c.admin.reuse_port = r.boolean(*t, "reuse_port").value_or(false);
		if (t->get("listen"))
			c.admin.listen = r.required_endpoint(*t, "listen", "[admin]", true);
	}

	if (c.listeners.empty())
		r.fail(root, "no listener: add a [[listener]] (or a tcp [[route]])");
	std::set<std::string> addresses;
	for (const Listener &l : c.listeners) {
		if (!addresses.insert(l.address.text()).second)
			throw usage_error("config", l.where + ": address " + l.address.text() + " is used twice");
		if (l.mode == Mode::Reverse && c.routes.empty())
			throw usage_error("config", l.where + ": a reverse listener needs at least one [[route]]");
	}
	if (c.admin.enabled && addresses.count(c.admin.listen.text()))
		throw usage_error("config", source + ": the admin address " + c.admin.listen.text() +
						    " is also a listener");
	return c;
}

} // namespace

const char *tls_mode_name(TlsMode mode)
{
	switch (mode) {
	case TlsMode::Off: return "off";
	case TlsMode::Passthrough: return "passthrough";
	case TlsMode::Intercept: return "intercept";
	}
	return "?";
}

std::optional<TlsMode> parse_tls_mode(std::string_view name)
{
	for (TlsMode m : {TlsMode::Off, TlsMode::Passthrough, TlsMode::Intercept})
		if (name == tls_mode_name(m))
			return m;
	return std::nullopt;
}

bool Tls::needed(const std::vector<Listener> &listeners) const
{
	for (const Listener &l : listeners) {
		if (l.tls)
			return true;
		if (mode == TlsMode::Intercept && (l.mode == Mode::Forward || l.mode == Mode::Transparent))
			return true;
	}
	return false;
}

const char *mode_name(Mode mode)
{
	switch (mode) {
	case Mode::Reverse:
		return "reverse";
	case Mode::Forward:
		return "forward";
	case Mode::Transparent:
		return "transparent";
	case Mode::Tcp:
		return "tcp";
	}
	return "?";
}

std::optional<Mode> parse_mode(std::string_view name)
{
	for (Mode m : {Mode::Reverse, Mode::Forward, Mode::Transparent, Mode::Tcp})
		if (name == mode_name(m))
			return m;
	return std::nullopt;
}

std::string HostPort::text() const { return net::host_port(host, port); }

HostPort parse_host_port(std::string_view text, const std::string &what)
{
	HostPort e;
	std::string_view host, port;
	if (!text.empty() && text[0] == '[') {
		size_t close = text.find(']');
		if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
			throw usage_error("config", what + " must be ADDR:PORT, [IPV6]:PORT", std::string(text));
		host = text.substr(1, close - 1);
		port = text.substr(close + 2);
	} else {
		size_t colon = text.rfind(':');
		if (colon == std::string_view::npos || text.find(':') != colon)
			throw usage_error("config", what + " must be ADDR:PORT, [IPV6]:PORT", std::string(text));
		host = text.substr(0, colon);
		port = text.substr(colon + 1);
	}
	unsigned p = 0;
	auto r = std::from_chars(port.data(), port.data() + port.size(), p);
	if (r.ec != std::errc() || r.ptr != port.data() + port.size() || p == 0 || p > 65535)
		throw usage_error("config", what + " has a bad port (1-65535)", std::string(text));
	if (host.empty())
		throw usage_error("config", what + " has no address", std::string(text));
	e.host = host == "*" ? "0.0.0.0" : std::string(host);
	e.port = static_cast<uint16_t>(p);
	return e;
}

const Route *Config::route(std::string_view host, std::string_view path) const
{
	for (const Route &r : routes) {
		if (!r.host.empty()) {
			if (r.host[0] == '*') {
				std::string_view suffix = std::string_view(r.host).substr(1); // ".example.com"
				if (host.size() <= suffix.size() || host.substr(host.size() - suffix.size()) != suffix)
					continue;
			} else if (host != r.host) {
				continue;
			}
		}
		if (path.compare(0, r.path.size(), r.path) == 0)
			return &r;
	}
	return nullptr;
}

uint64_t Limits::worker_connections(unsigned workers) const
{
	if (max_connections == 0 || workers == 0)
		return max_connections;
	return (max_connections + workers - 1) / workers;
}

double Limits::burst_per_ip() const
{
	if (request_burst_per_ip > 0)
		return request_burst_per_ip;
	return std::max(1.0, requests_per_second_per_ip);
}

void Config::reuse_ports()
{
	for (Listener &l : listeners)
		l.reuse_port = true;
	admin.reuse_port = true;
}

unsigned Config::worker_count() const
{
	if (workers)
		return workers;
	unsigned n = std::thread::hardware_concurrency();
	return n ? n : 1;
}

Config load_string(std::string_view text, const std::string &source)
{
	return build(parse_toml(text, source, "config"), source);
}

Config load_file(const std::string &path)
{
	return load_string(sys::read_file(path, "config"), path);
}

Upstream upstream_from_flag(std::string_view text)
{
	// ADDR:PORT, or a URL's scheme and authority: http://HOST[:PORT] and
	// https://HOST[:PORT] (an HTTPS origin, as `tls = true`), ports 80 and
	// 443 when left out. A path would be silently dropped: refused.
	Upstream u;
	u.name = "default";
	std::string_view rest = text;
	std::string_view default_port;
	if (rest.starts_with("https://")) {
		u.tls = true;
		rest.remove_prefix(8);
		default_port = "443";
	} else if (rest.starts_with("http://")) {
		rest.remove_prefix(7);
		default_port = "80";
	} else if (rest.find("://") != std::string_view::npos) {
		throw usage_error("run", "--upstream takes ADDR:PORT, http://HOST[:PORT] or https://HOST[:PORT]",
				  std::string(text));
	}
	if (!default_port.empty() && rest.ends_with('/'))
		rest.remove_suffix(1);
	if (rest.find('/') != std::string_view::npos)
		throw usage_error("run", "--upstream takes no path (routes choose paths)", std::string(text));
	std::string authority(rest);
	// A port is missing when nothing follows the last ':' outside an IPv6
	// literal's brackets.
	const size_t bracket = authority.rfind(']');
	const size_t colon = authority.rfind(':');
	const bool has_port = colon != std::string::npos && (bracket == std::string::npos || colon > bracket);
	if (!default_port.empty() && !has_port)
		authority += ":" + std::string(default_port);
	u.servers.push_back(resolve(parse_host_port(authority, "--upstream"), Reader("--upstream"), nullptr));
	return u;
}

Config from_flags(Mode mode, const std::string &listen, const std::string &upstream)
{
	Config c;
	c.source = "(command line)";
	Listener l;
	l.address = parse_host_port(listen, "--listen");
	if (!is_ip_literal(l.address.host))
		throw usage_error("run", "--listen must be an IP address and a port", listen);
	l.mode = mode;
	l.tproxy = mode == Mode::Transparent;
	l.where = "--listen";
	if (mode == Mode::Reverse) {
		if (upstream.empty())
			throw usage_error("run", "--mode reverse needs --upstream ADDR:PORT");
		c.upstreams.push_back(upstream_from_flag(upstream));
		c.routes.push_back(Route{});
	} else if (!upstream.empty()) {
		throw usage_error("run", std::string("--upstream goes with --mode reverse, not ") + mode_name(mode));
	}
	c.listeners.push_back(l);
	return c;
}

const char *embedded_default() { return kDefaultToml; }

size_t Config::add_script(const std::string &path)
{
	for (size_t i = 0; i < scripts.size(); i++)
		if (scripts[i] == path)
			return i;
	scripts.push_back(path);
	return scripts.size() - 1;
}

} // namespace sonic::config
