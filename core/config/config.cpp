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

Listener read_listener(const Reader &r, const toml::table &t)
{
	r.check_keys(t, {"address", "mode", "tproxy", "reuse_port", "tls"}, "[[listener]]");
	Listener l;
	l.address = r.required_endpoint(t, "address", "[[listener]]", true);
	l.where = r.at(t);
	l.reuse_port = r.boolean(t, "reuse_port").value_or(false);
	if (auto m = r.string(t, "mode")) {
		auto mode = parse_mode(*m);
		if (!mode || *mode == Mode::Tcp)
			r.fail(*t.get("mode"), "mode must be reverse, forward or transparent");
		l.mode = *mode;
	}
	// Transparent listeners take every way of steering by default;
	// tproxy = false leaves out IP_TRANSPARENT (REDIRECT and cgroup
	// steering only, no CAP_NET_ADMIN needed).
	l.tproxy = l.mode == Mode::Transparent;
	if (auto tp = r.boolean(t, "tproxy")) {
		if (l.mode != Mode::Transparent && *tp)
			r.fail(*t.get("tproxy"), "tproxy goes with mode = \"transparent\"");
		l.tproxy = *tp;
	}
	if (auto tl = r.string(t, "tls")) {
		if (*tl != "intercept" && *tl != "off")
			r.fail(*t.get("tls"), "tls must be \"intercept\" or \"off\"");
		if (*tl == "intercept" && l.mode != Mode::Reverse)
			r.fail(*t.get("tls"), "a listener's tls = \"intercept\" goes with mode = \"reverse\"; "
					      "forward and transparent listeners follow [tls] mode");
		l.tls = *tl == "intercept";
	}
	return l;
}

Timeouts read_timeouts(const Reader &r, const toml::table &t)
{
	r.check_keys(t,
		     {"client_header", "client_body", "client_idle", "upstream_connect", "upstream_response",
		      "upstream_idle", "tunnel_idle", "drain"},
		     "[timeouts]");
	Timeouts to;
	for (auto [key, field] : {std::pair{"client_header", &to.client_header}, {"client_body", &to.client_body},
				  {"client_idle", &to.client_idle}, {"upstream_connect", &to.upstream_connect},
				  {"upstream_response", &to.upstream_response},
				  {"upstream_idle", &to.upstream_idle}, {"tunnel_idle", &to.tunnel_idle},
				  {"drain", &to.drain}})
		if (auto d = r.duration(t, key))
			*field = *d;
	return to;
}

Limits read_limits(const Reader &r, const toml::table &t)
{
	r.check_keys(t,
		     {"header_bytes", "body_bytes", "keepalive_requests", "max_connections", "max_connections_per_ip",
		      "requests_per_second_per_ip", "request_burst_per_ip"},
		     "[limits]");
	Limits l;
	if (auto v = r.integer(t, "header_bytes", 1024, 1 << 20))
		l.header_bytes = static_cast<size_t>(*v);
	if (auto v = r.integer(t, "body_bytes", 0, INT64_MAX))
		l.body_bytes = static_cast<uint64_t>(*v);
	if (auto v = r.integer(t, "keepalive_requests", 1, 100000000))
		l.keepalive_requests = static_cast<unsigned>(*v);
	if (auto v = r.integer(t, "max_connections", 0, 100000000))
		l.max_connections = static_cast<uint64_t>(*v);
	if (auto v = r.integer(t, "max_connections_per_ip", 0, 65535))
		l.max_connections_per_ip = static_cast<unsigned>(*v);
	if (auto v = r.number(t, "requests_per_second_per_ip", 0, 1000000))
		l.requests_per_second_per_ip = *v;
	if (auto v = r.number(t, "request_burst_per_ip", 1, 1000000)) {
		if (l.requests_per_second_per_ip == 0)
			r.fail(*t.get("request_burst_per_ip"), "request_burst_per_ip goes with requests_per_second_per_ip");
		l.request_burst_per_ip = *v;
	}
	return l;
}

ScriptLimits read_script_limits(const Reader &r, const toml::table &t)
{
	r.check_keys(t, {"cpu", "heap_bytes", "subrequests", "script_bytes"}, "[script_limits]");
	ScriptLimits s;
	if (auto d = r.duration(t, "cpu")) {
		if (d->count() < 1 || d->count() > 60000)
			r.fail(*t.get("cpu"), "'cpu' must be from 1ms to 60s");
		s.cpu = *d;
	}
	if (auto v = r.integer(t, "heap_bytes", 1 << 20, int64_t(64) << 30))
		s.heap_bytes = static_cast<uint64_t>(*v);
	if (auto v = r.integer(t, "subrequests", 0, 10000))
		s.subrequests = static_cast<unsigned>(*v);
	if (auto v = r.integer(t, "script_bytes", 1, int64_t(1) << 30))
		s.script_bytes = static_cast<uint64_t>(*v);
	return s;
}

// [vars] as the JSON object scripts see as env.
std::string read_vars(const Reader &r, const toml::table &t)
{
	nlohmann::json vars = nlohmann::json::object();
	for (const auto &[key, node] : t) {
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
	return vars.dump();
}

HeaderPolicy read_headers(const Reader &r, const toml::table &t)
{
	r.check_keys(t, {"via", "x_forwarded_for", "forwarded"}, "[headers]");
	HeaderPolicy h;
	h.via = r.boolean(t, "via").value_or(h.via);
	h.x_forwarded_for = r.boolean(t, "x_forwarded_for").value_or(h.x_forwarded_for);
	h.forwarded = r.boolean(t, "forwarded").value_or(h.forwarded);
	return h;
}

AccessLog read_access_log(const Reader &r, const toml::table &t)
{
	r.check_keys(t, {"enabled", "path"}, "[access_log]");
	AccessLog a;
	a.enabled = r.boolean(t, "enabled").value_or(true);
	a.path = r.string(t, "path").value_or("-");
	if (a.path.empty())
		r.fail(*t.get("path"), "path must be a file or \"-\" (standard output)");
	return a;
}

Tunnels read_tunnels(const Reader &r, const toml::table &t)
{
	r.check_keys(t, {"splice"}, "[tunnels]");
	Tunnels tu;
	tu.splice = r.boolean(t, "splice").value_or(tu.splice);
	return tu;
}

Fw read_fw(const Reader &r, const toml::table &t)
{
	r.check_keys(t, {"never_block", "blocks_per_minute", "block_ttl"}, "[fw]");
	Fw fw;
	if (const toml::node *n = t.get("never_block")) {
		if (!n->is_array())
			r.fail(*n, "'never_block' must be an array of addresses or prefixes");
		for (const toml::node &e : *n->as_array()) {
			if (!e.is_string())
				r.fail(e, "'never_block' must be an array of addresses or prefixes");
			try {
				fw.never_block.push_back(net::parse_cidr(*e.value<std::string>()));
			} catch (const Error &err) {
				r.fail(e, err.what());
			}
		}
	}
	if (auto n = r.integer(t, "blocks_per_minute", 1, 1000000))
		fw.blocks_per_minute = static_cast<unsigned>(*n);
	if (auto d = r.duration(t, "block_ttl")) {
		if (d->count() < 1000)
			r.fail(*t.get("block_ttl"), "'block_ttl' must be at least one second");
		fw.block_ttl = std::chrono::duration_cast<std::chrono::seconds>(*d);
	}
	return fw;
}

// T[KEY], an array of non-empty strings, each handed to ADD; an error ADD
// throws is reported at its string.
template <typename Add>
void each_string(const Reader &r, const toml::table &t, const char *key, const char *what, Add add)
{
	const toml::node *n = t.get(key);
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
}

Tls read_tls(const Reader &r, const toml::table &t)
{
	r.check_keys(t, {"mode", "passthrough_sni", "passthrough_dst", "upstream_ca"}, "[tls]");
	Tls tls;
	if (auto m = r.string(t, "mode")) {
		auto mode = parse_tls_mode(*m);
		if (!mode)
			r.fail(*t.get("mode"), "mode must be \"intercept\", \"passthrough\" or \"off\"");
		tls.mode = *mode;
	}
	each_string(r, t, "passthrough_sni", "name globs",
		    [&](const std::string &g) { tls.passthrough_sni.push_back(lower(g)); });
	each_string(r, t, "passthrough_dst", "addresses or prefixes",
		    [&](const std::string &p) { tls.passthrough_dst.push_back(net::parse_cidr(p)); });
	tls.upstream_ca = r.string(t, "upstream_ca").value_or("");
	return tls;
}

Admin read_admin(const Reader &r, const toml::table &t)
{
	r.check_keys(t, {"enabled", "listen", "reuse_port"}, "[admin]");
	Admin a;
	a.enabled = r.boolean(t, "enabled").value_or(true);
	a.reuse_port = r.boolean(t, "reuse_port").value_or(false);
	if (t.get("listen"))
		a.listen = r.required_endpoint(t, "listen", "[admin]", true);
	return a;
}

// The folder of the config file SOURCE, ending in '/', or "" for a bare name.
std::string folder_of(const std::string &source)
{
	return source.find('/') == std::string::npos ? std::string() : source.substr(0, source.rfind('/') + 1);
}

// The Config being read, with what its sections refer to across each
// other: routes name upstreams and scripts, and tcp routes are listeners.
class Builder {
public:
	explicit Builder(const std::string &source) : r(source), dir(folder_of(source)) { c.source = source; }

	const Reader r;
	Config c;

	// T's 'script' as an index into Config::scripts, if it names one.
	std::optional<size_t> script(const toml::table &t)
	{
		auto p = r.string(t, "script");
		if (!p)
			return std::nullopt;
		if (p->empty())
			r.fail(*t.get("script"), "'script' must name a JavaScript file");
		std::string path = (*p)[0] == '/' || p->rfind("builtin:", 0) == 0 || c.source.front() == '(' ? *p : dir + *p;
		return c.add_script(path);
	}

	void add_upstream(const toml::table &t)
	{
		r.check_keys(t, {"name", "servers", "keepalive", "fail_timeout", "tls", "tls_name"}, "[[upstream]]");
		Upstream u;
		auto name = r.string(t, "name");
		if (!name || name->empty())
			r.fail(t, "[[upstream]] needs a 'name'");
		u.name = *name;
		if (upstream_index.count(u.name))
			r.fail(*t.get("name"), "upstream '" + u.name + "' defined twice");
		const toml::node *servers = t.get("servers");
		if (!servers || !servers->is_array() || servers->as_array()->empty())
			r.fail(servers ? *servers : static_cast<const toml::node &>(t),
			       "upstream '" + u.name + "' needs 'servers', a non-empty array of \"ADDR:PORT\"");
		for (const toml::node &s : *servers->as_array())
			u.servers.push_back(resolve(r.endpoint(s, "a server", false), r, &s));
		u.tls = r.boolean(t, "tls").value_or(false);
		if (auto tls_name = r.string(t, "tls_name")) {
			if (!u.tls)
				r.fail(*t.get("tls_name"), "'tls_name' goes with 'tls = true'");
			if (tls_name->empty())
				r.fail(*t.get("tls_name"), "'tls_name' is empty");
			u.tls_name = *tls_name;
		}
		if (auto k = r.integer(t, "keepalive", 0, 100000))
			u.keepalive = static_cast<unsigned>(*k);
		if (auto f = r.duration(t, "fail_timeout"))
			u.fail_timeout = *f;
		upstream_index[u.name] = c.upstreams.size();
		c.upstreams.push_back(std::move(u));
	}

	// A [[route]]: an HTTP route, or with protocol = "tcp" a listener.
	void add_route(const toml::table &t)
	{
		auto protocol = r.string(t, "protocol").value_or("http");
		if (protocol == "tcp") {
			c.listeners.push_back(tcp_route(t));
			return;
		}
		if (protocol != "http")
			r.fail(*t.get("protocol"), "protocol must be \"http\" or \"tcp\"");
		c.routes.push_back(http_route(t));
	}

	// At least one listener, each on its own address, the admin listener's too.
	void check_listeners(const toml::table &root) const
	{
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
			throw usage_error("config", c.source + ": the admin address " + c.admin.listen.text() +
							      " is also a listener");
	}

private:
	const std::string dir; // where relative script names start
	std::map<std::string, size_t> upstream_index;

	size_t upstream(const toml::table &t, const std::string &section) const
	{
		auto name = r.string(t, "upstream");
		if (!name)
			r.fail(t, section + " needs 'upstream'");
		auto it = upstream_index.find(*name);
		if (it == upstream_index.end())
			r.fail(*t.get("upstream"), "no upstream named '" + *name + "'");
		return it->second;
	}

	Listener tcp_route(const toml::table &t) const
	{
		r.check_keys(t, {"protocol", "listen", "upstream", "reuse_port"}, "a tcp [[route]]");
		Listener l;
		l.mode = Mode::Tcp;
		l.address = r.required_endpoint(t, "listen", "a tcp [[route]]", true);
		l.upstream = upstream(t, "[[route]]");
		l.reuse_port = r.boolean(t, "reuse_port").value_or(false);
		l.where = r.at(t);
		return l;
	}

	Route http_route(const toml::table &t)
	{
		r.check_keys(t, {"protocol", "host", "path", "upstream", "script"}, "[[route]]");
		Route route;
		route.host = lower(r.string(t, "host").value_or(""));
		if (route.host == "*")
			route.host.clear();
		if (!route.host.empty() && route.host.find('*') != std::string::npos &&
		    (route.host.rfind("*.", 0) != 0 || route.host.find('*', 1) != std::string::npos))
			r.fail(*t.get("host"), "host wildcards are written \"*.example.com\"");
		route.path = r.string(t, "path").value_or("/");
		if (route.path.empty() || route.path[0] != '/')
			r.fail(*t.get("path"), "path must start with '/'");
		route.upstream = upstream(t, "[[route]]");
		if (auto sc = script(t))
			route.script = *sc;
		return route;
	}
};

// The sections are read, and their errors reported, in this order.
Config build(const toml::table &root, const std::string &source)
{
	Builder b(source);
	const Reader &r = b.r;
	Config &c = b.c;
	r.check_keys(root,
		     {"workers", "listener", "upstream", "route", "timeouts", "limits", "headers", "access_log", "admin",
		      "tunnels", "fw", "script", "script_limits", "vars", "tls"},
		     "");
	if (auto s = b.script(root))
		c.script = *s;
	if (auto w = r.integer(root, "workers", 0, 1024))
		c.workers = static_cast<unsigned>(*w);
	for (const toml::table *t : r.tables(root, "upstream"))
		b.add_upstream(*t);
	for (const toml::table *t : r.tables(root, "listener"))
		c.listeners.push_back(read_listener(r, *t));
	for (const toml::table *t : r.tables(root, "route"))
		b.add_route(*t);
	sort_routes(c.routes);
	if (const toml::table *t = r.table(root, "timeouts"))
		c.timeouts = read_timeouts(r, *t);
	if (const toml::table *t = r.table(root, "limits"))
		c.limits = read_limits(r, *t);
	if (const toml::table *t = r.table(root, "script_limits"))
		c.script_limits = read_script_limits(r, *t);
	if (const toml::table *t = r.table(root, "vars"))
		c.vars_json = read_vars(r, *t);
	if (const toml::table *t = r.table(root, "headers"))
		c.headers = read_headers(r, *t);
	if (const toml::table *t = r.table(root, "access_log"))
		c.access_log = read_access_log(r, *t);
	if (const toml::table *t = r.table(root, "tunnels"))
		c.tunnels = read_tunnels(r, *t);
	if (const toml::table *t = r.table(root, "fw"))
		c.fw = read_fw(r, *t);
	if (const toml::table *t = r.table(root, "tls"))
		c.tls = read_tls(r, *t);
	if (const toml::table *t = r.table(root, "admin"))
		c.admin = read_admin(r, *t);
	b.check_listeners(root);
	return std::move(b.c);
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
