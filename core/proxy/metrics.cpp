#include "proxy/metrics.hpp"

#include "js/program.hpp"

#include "proxy/upstream.hpp"

#include <cstdio>

namespace sonic::proxy {

namespace {

void family(std::string &out, const char *name, const char *type, const char *help)
{
	out += "# HELP ";
	out += name;
	out += ' ';
	out += help;
	out += "\n# TYPE ";
	out += name;
	out += ' ';
	out += type;
	out += '\n';
}

void sample(std::string &out, const char *name, const std::string &labels, uint64_t value)
{
	out += name;
	if (!labels.empty())
		out += "{" + labels + "}";
	out += ' ';
	out += std::to_string(value);
	out += '\n';
}

template <typename F> uint64_t sum(const std::vector<const Metrics *> &workers, F field)
{
	uint64_t total = 0;
	for (const Metrics *m : workers)
		total += field(*m).get();
	return total;
}

// Prometheus label values escape backslash, quote and newline.
std::string label_value(const std::string &s)
{
	std::string out;
	for (char c : s) {
		if (c == '\\' || c == '"')
			out += '\\';
		if (c == '\n') {
			out += "\\n";
			continue;
		}
		out += c;
	}
	return out;
}

void fw_samples(std::string &out, const bpf::FwMetrics &fw)
{
	family(out, "sonic_fw_rule_drops_total", "counter",
	       "Packets dropped in XDP by each fw rule: every match of a drop rule, the packets above the rate of a "
	       "limit rule.");
	for (const auto &r : fw.rules)
		if (r.action != bpf::FwAction::Pass)
			sample(out, "sonic_fw_rule_drops_total", "rule=\"" + label_value(r.text) + "\"", r.dropped);
	family(out, "sonic_fw_rule_matches_total", "counter", "Packets each fw rule decided.");
	for (const auto &r : fw.rules)
		sample(out, "sonic_fw_rule_matches_total", "rule=\"" + label_value(r.text) + "\"", r.packets);
	family(out, "sonic_fw_limited_total", "counter", "Packets limit rules dropped above their rate (all rules).");
	sample(out, "sonic_fw_limited_total", "", fw.limit_drops);
	family(out, "sonic_fw_blocklist_entries", "gauge", "Live entries of the fw blocklist.");
	sample(out, "sonic_fw_blocklist_entries", "", fw.blocklist_entries);
	family(out, "sonic_fw_blocklist_drops_total", "counter", "Packets the fw blocklist dropped.");
	sample(out, "sonic_fw_blocklist_drops_total", "", fw.blocklist_drops);
}

} // namespace

const char *tunnel_kind_name(TunnelKind kind)
{
	switch (kind) {
	case TunnelKind::Connect:
		return "connect";
	case TunnelKind::Upgrade:
		return "upgrade";
	case TunnelKind::Tcp:
		return "tcp";
	case TunnelKind::Transparent:
		return "transparent";
	}
	return "?";
}

const char *tls_failure_name(TlsFailure f)
{
	switch (f) {
	case TlsFailure::BadHello: return "bad_hello";
	case TlsFailure::SlowHello: return "slow_hello";
	case TlsFailure::OldVersion: return "old_version";
	case TlsFailure::Handshake: return "handshake";
	case TlsFailure::NoLeaf: return "no_leaf";
	}
	return "?";
}

const char *limit_name(Limit limit)
{
	switch (limit) {
	case Limit::MaxConnections:
		return "max_connections";
	case Limit::MaxConnectionsPerIp:
		return "max_connections_per_ip";
	}
	return "?";
}

// Per worker script (summed over the workers' heaps): requests run,
// errors by kind, CPU time.
void script_samples(std::string &out, const std::vector<std::shared_ptr<const js::Program>> &scripts)
{
	if (scripts.empty())
		return;
	auto label = [](const js::Program &p) {
		std::string l = "script=\"";
		for (char c : p.path) {
			if (c == '"' || c == '\\')
				l += '\\';
			l += c == '\n' ? ' ' : c;
		}
		return l + "\"";
	};
	family(out, "sonic_script_invocations_total", "counter", "Requests each worker script ran on.");
	for (const auto &p : scripts)
		sample(out, "sonic_script_invocations_total", label(*p), p->stats.runs.load());
	family(out, "sonic_script_failures_total", "counter",
	       "Requests a worker script failed, by kind: throw (an exception or no Response), timeout (its CPU "
	       "limit), heap (its heap limit; the heap is rebuilt).");
	for (const auto &p : scripts) {
		sample(out, "sonic_script_failures_total", label(*p) + ",kind=\"throw\"", p->stats.throws.load());
		sample(out, "sonic_script_failures_total", label(*p) + ",kind=\"timeout\"", p->stats.timeouts.load());
		sample(out, "sonic_script_failures_total", label(*p) + ",kind=\"heap\"", p->stats.heaps.load());
	}
	family(out, "sonic_script_cpu_seconds_total", "counter", "CPU time spent in each worker script.");
	for (const auto &p : scripts) {
		char v[32];
		std::snprintf(v, sizeof(v), "%.6f", static_cast<double>(p->stats.cpu_ns.load()) / 1e9);
		out += "sonic_script_cpu_seconds_total{" + label(*p) + "} " + v + "\n";
	}
}

std::string prometheus_text(const std::vector<const Metrics *> &w, const ServerFacts &facts)
{
	std::string out;
	out.reserve(4096);
	family(out, "sonic_connections_accepted_total", "counter", "Client connections accepted.");
	sample(out, "sonic_connections_accepted_total", "", sum(w, [](const Metrics &m) -> const Counter & { return m.connections_accepted; }));
	family(out, "sonic_connections_active", "gauge", "Client connections open now.");
	sample(out, "sonic_connections_active", "", sum(w, [](const Metrics &m) -> const Counter & { return m.connections_active; }));
	family(out, "sonic_connections_refused_total", "counter",
	       "New client connections closed at once, by the [limits] key they were over.");
	for (int k = 0; k < kLimits; ++k)
		sample(out, "sonic_connections_refused_total", std::string("limit=\"") + limit_name(static_cast<Limit>(k)) + "\"",
		       sum(w, [k](const Metrics &m) -> const Counter & { return m.connections_refused[k]; }));
	family(out, "sonic_requests_rate_limited_total", "counter",
	       "Requests answered 503 (Retry-After) for their address's rate, [limits] requests_per_second_per_ip.");
	sample(out, "sonic_requests_rate_limited_total", "", sum(w, [](const Metrics &m) -> const Counter & { return m.requests_rate_limited; }));
	family(out, "sonic_client_table_full_total", "counter",
	       "Connections or requests let through untracked: no room for their address in the per-address table.");
	sample(out, "sonic_client_table_full_total", "", sum(w, [](const Metrics &m) -> const Counter & { return m.client_table_full; }));
	family(out, "sonic_accept_errors_total", "counter", "accept() failures such as EMFILE (running out of descriptors).");
	sample(out, "sonic_accept_errors_total", "", sum(w, [](const Metrics &m) -> const Counter & { return m.accept_errors; }));
	family(out, "sonic_idle_closed_for_room_total", "counter",
	       "Idle keep-alive client connections closed to make room when accepting had to pause.");
	sample(out, "sonic_idle_closed_for_room_total", "", sum(w, [](const Metrics &m) -> const Counter & { return m.idle_closed_for_room; }));
	family(out, "sonic_http_requests_total", "counter", "HTTP requests answered, by status class.");
	for (int cls = 1; cls <= 5; ++cls)
		sample(out, "sonic_http_requests_total", "code=\"" + std::to_string(cls) + "xx\"",
		       sum(w, [cls](const Metrics &m) -> const Counter & { return m.requests[cls]; }));
	family(out, "sonic_upstream_connects_total", "counter", "New connections opened to upstream servers.");
	sample(out, "sonic_upstream_connects_total", "", sum(w, [](const Metrics &m) -> const Counter & { return m.upstream_connects; }));
	family(out, "sonic_upstream_reuses_total", "counter", "Requests sent on a kept-alive upstream connection.");
	sample(out, "sonic_upstream_reuses_total", "", sum(w, [](const Metrics &m) -> const Counter & { return m.upstream_reuses; }));
	family(out, "sonic_upstream_connect_errors_total", "counter", "Upstream connections refused or failed.");
	sample(out, "sonic_upstream_connect_errors_total", "", sum(w, [](const Metrics &m) -> const Counter & { return m.upstream_connect_errors; }));
	family(out, "sonic_upstream_timeouts_total", "counter", "Upstream connects or responses that timed out.");
	sample(out, "sonic_upstream_timeouts_total", "", sum(w, [](const Metrics &m) -> const Counter & { return m.upstream_timeouts; }));
	family(out, "sonic_client_aborts_total", "counter", "Requests whose client went away before the end.");
	sample(out, "sonic_client_aborts_total", "", sum(w, [](const Metrics &m) -> const Counter & { return m.client_aborts; }));
	family(out, "sonic_local_errors_total", "counter",
	       "5xx answers sonic made itself rather than relayed, by cause (each also logged with its server and errno).");
	for (int c = 0; c < Metrics::kLocalErrorCauses; ++c)
		sample(out, "sonic_local_errors_total", std::string("cause=\"") + cause_name(static_cast<Cause>(c)) + "\"",
		       sum(w, [c](const Metrics &m) -> const Counter & { return m.local_errors[c]; }));
	family(out, "sonic_script_runs_total", "counter", "Requests a worker script ran on.");
	sample(out, "sonic_script_runs_total", "", sum(w, [](const Metrics &m) -> const Counter & { return m.script_runs; }));
	family(out, "sonic_script_errors_total", "counter", "Script runs that threw, returned no Response or hit a limit.");
	sample(out, "sonic_script_errors_total", "", sum(w, [](const Metrics &m) -> const Counter & { return m.script_errors; }));
	script_samples(out, facts.scripts);
	family(out, "sonic_tunnels_total", "counter", "Tunnels opened (CONNECT, Upgrade, tcp routes, transparent non-HTTP).");
	for (int k = 0; k < kTunnelKinds; ++k)
		sample(out, "sonic_tunnels_total", std::string("kind=\"") + tunnel_kind_name(static_cast<TunnelKind>(k)) + "\"",
		       sum(w, [k](const Metrics &m) -> const Counter & { return m.tunnels[k]; }));
	family(out, "sonic_tunnels_active", "gauge", "Tunnels open now.");
	sample(out, "sonic_tunnels_active", "", sum(w, [](const Metrics &m) -> const Counter & { return m.tunnels_active; }));
	family(out, "sonic_tunnel_bytes_total", "counter",
	       "Bytes carried by finished tunnels, by direction and by path: spliced (forwarded by the kernel) or "
	       "copied (through sonic's buffers).");
	sample(out, "sonic_tunnel_bytes_total", "direction=\"upstream\",path=\"spliced\"",
	       sum(w, [](const Metrics &m) -> const Counter & { return m.tunnel_spliced_up; }));
	sample(out, "sonic_tunnel_bytes_total", "direction=\"upstream\",path=\"copied\"",
	       sum(w, [](const Metrics &m) -> const Counter & { return m.tunnel_copied_up; }));
	sample(out, "sonic_tunnel_bytes_total", "direction=\"client\",path=\"spliced\"",
	       sum(w, [](const Metrics &m) -> const Counter & { return m.tunnel_spliced_down; }));
	sample(out, "sonic_tunnel_bytes_total", "direction=\"client\",path=\"copied\"",
	       sum(w, [](const Metrics &m) -> const Counter & { return m.tunnel_copied_down; }));
	family(out, "sonic_tls_connections_total", "counter",
	       "Client TLS connections, by what sonic did: intercepted (terminated with a minted leaf) or passthrough "
	       "(passed on untouched; its bytes are in sonic_tunnel_bytes_total).");
	sample(out, "sonic_tls_connections_total", "action=\"intercepted\"",
	       sum(w, [](const Metrics &m) -> const Counter & { return m.tls_intercepted; }));
	sample(out, "sonic_tls_connections_total", "action=\"passthrough\"",
	       sum(w, [](const Metrics &m) -> const Counter & { return m.tls_passthrough; }));
	family(out, "sonic_tls_resumed_total", "counter", "Intercepted client handshakes that resumed a session (tickets).");
	sample(out, "sonic_tls_resumed_total", "", sum(w, [](const Metrics &m) -> const Counter & { return m.tls_resumed; }));
	family(out, "sonic_tls_failures_total", "counter", "Client TLS connections closed before a request, by reason.");
	for (int k = 0; k < kTlsFailures; ++k)
		sample(out, "sonic_tls_failures_total", std::string("reason=\"") + tls_failure_name(static_cast<TlsFailure>(k)) + "\"",
		       sum(w, [k](const Metrics &m) -> const Counter & { return m.tls_failures[k]; }));
	family(out, "sonic_tls_certificates_total", "counter",
	       "Leaves served to handshakes: hit (from memory, on the worker) or miss (loaded or minted on the TLS pool).");
	sample(out, "sonic_tls_certificates_total", "lookup=\"hit\"",
	       sum(w, [](const Metrics &m) -> const Counter & { return m.tls_cert_hits; }));
	sample(out, "sonic_tls_certificates_total", "lookup=\"miss\"",
	       sum(w, [](const Metrics &m) -> const Counter & { return m.tls_cert_misses; }));
	family(out, "sonic_tls_upstream_handshakes_total", "counter", "TLS handshakes with origins, by outcome.");
	sample(out, "sonic_tls_upstream_handshakes_total", "outcome=\"full\"",
	       sum(w, [](const Metrics &m) -> const Counter & { return m.tls_upstream_handshakes; }) -
		       sum(w, [](const Metrics &m) -> const Counter & { return m.tls_upstream_resumed; }));
	sample(out, "sonic_tls_upstream_handshakes_total", "outcome=\"resumed\"",
	       sum(w, [](const Metrics &m) -> const Counter & { return m.tls_upstream_resumed; }));
	sample(out, "sonic_tls_upstream_handshakes_total", "outcome=\"failed\"",
	       sum(w, [](const Metrics &m) -> const Counter & { return m.tls_upstream_failures; }));
	family(out, "sonic_tls_handshake_waits_total", "counter",
	       "TLS handshake steps that waited a turn of the event loop, so that a burst of handshakes does not hold up "
	       "open connections.");
	sample(out, "sonic_tls_handshake_waits_total", "",
	       sum(w, [](const Metrics &m) -> const Counter & { return m.tls_handshake_waits; }));
	family(out, "sonic_timeout_waits_total", "counter",
	       "Timed-out client connections whose ending waited a turn of the event loop, so that many timing out "
	       "at once do not hold up open connections.");
	sample(out, "sonic_timeout_waits_total", "",
	       sum(w, [](const Metrics &m) -> const Counter & { return m.timeout_waits; }));
	family(out, "sonic_config_reloads_total", "counter", "Configurations loaded by SIGHUP.");
	sample(out, "sonic_config_reloads_total", "", facts.reloads);
	family(out, "sonic_config_reload_errors_total", "counter", "SIGHUP reloads refused (the old configuration stayed).");
	sample(out, "sonic_config_reload_errors_total", "", facts.reload_errors);
	family(out, "sonic_workers", "gauge", "Worker threads.");
	sample(out, "sonic_workers", "", facts.workers);
	family(out, "sonic_draining", "gauge", "1 while sonic drains after SIGTERM.");
	sample(out, "sonic_draining", "", facts.draining ? 1 : 0);
	if (facts.fw)
		fw_samples(out, *facts.fw);
	return out;
}

} // namespace sonic::proxy
