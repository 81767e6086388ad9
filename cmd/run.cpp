// sonic run [--config FILE] [--check] [--mode MODE] [--listen ADDR:PORT]
//           [--upstream ADDR:PORT] [--script FILE] [--workers N] [--reuse-port]
#include "cli.hpp"

#include "config/config.hpp"
#include "js/program.hpp"
#include "out/error.hpp"
#include "proxy/server.hpp"
#include "tls/ca.hpp"
#include "tls/state.hpp"

#include <cctype>
#include <iostream>

namespace sonic::cmd {

namespace {

struct RunArgs {
	std::string config;
	bool check = false;
	std::string mode;
	std::string listen;
	std::string upstream;
	std::optional<unsigned> workers;
	bool reuse_port = false;
	std::string script;
	std::string tls;
	std::vector<std::string> passthrough_sni;
	std::string upstream_ca;
	std::string state_dir;
};

// --tls, --passthrough-sni and --upstream-ca over the file's [tls].
void apply_tls_flags(config::Config &c, const RunArgs &a)
{
	if (!a.tls.empty()) {
		auto mode = config::parse_tls_mode(a.tls);
		if (!mode)
			throw usage_error("run", "--tls must be intercept, passthrough or off", a.tls);
		c.tls.mode = *mode;
	}
	for (const std::string &g : a.passthrough_sni) {
		if (g.empty())
			throw usage_error("run", "--passthrough-sni needs a name glob");
		std::string lower = g;
		for (char &ch : lower)
			ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
		c.tls.passthrough_sni.push_back(lower);
	}
	if (!a.upstream_ca.empty())
		c.tls.upstream_ca = a.upstream_ca;
	c.tls.state_dir = a.state_dir;
	if (!c.tls.needed(c.listeners))
		return;
	if (!tls::Ca::exists(c.tls.state_dir))
		throw env_error("run", "TLS interception needs sonic's CA, and there is none", tls::StatePaths(c.tls.state_dir).ca_file)
			.with_hint("run `sonic ca init` (then `sonic ca trust` or `sonic ca export` for the clients)");
}

config::Config load(const RunArgs &a)
{
	const bool flags = !a.mode.empty() || !a.listen.empty() || !a.upstream.empty();
	if (!a.config.empty() && flags)
		throw usage_error("run", "--config cannot be combined with --mode, --listen or --upstream");
	config::Config c;
	if (!a.config.empty()) {
		c = config::load_file(a.config);
	} else if (flags) {
		auto mode = config::parse_mode(a.mode.empty() ? "reverse" : a.mode);
		if (!mode || *mode == config::Mode::Tcp)
			throw usage_error("run", "--mode must be reverse, transparent or forward", a.mode);
		c = config::from_flags(*mode, a.listen.empty() ? "127.0.0.1:8080" : a.listen, a.upstream);
	} else {
		c = config::load_string(config::embedded_default(), "(embedded)");
	}
	if (a.workers) {
		if (*a.workers == 0 || *a.workers > 1024)
			throw usage_error("run", "--workers must be between 1 and 1024");
		c.workers = *a.workers;
	}
	if (a.reuse_port)
		c.reuse_ports();
	if (!a.script.empty())
		c.script = c.add_script(a.script);
	js::load_scripts(c, a.state_dir);
	apply_tls_flags(c, a);
	return c;
}

out::Value summary(const config::Config &c, bool check)
{
	out::Value listeners = out::Value::array();
	for (const config::Listener &l : c.listeners) {
		out::Value v = {{"address", l.address.text()}, {"mode", config::mode_name(l.mode)}};
		if (l.mode == config::Mode::Tcp)
			v["upstream"] = c.upstreams[l.upstream].name;
		if (l.tls)
			v["tls"] = "intercept";
		listeners.push_back(v);
	}
	out::Value v = {{"config", c.source}};
	if (!check)
		v["pid"] = static_cast<long>(getpid());
	v["workers"] = c.worker_count();
	v["listeners"] = listeners;
	v["routes"] = c.routes.size();
	v["upstreams"] = c.upstreams.size();
	v["admin"] = c.admin.enabled ? out::Value(c.admin.listen.text()) : out::Value();
	v["access_log"] = c.access_log.enabled ? out::Value(c.access_log.path) : out::Value();
	out::Value scripts = out::Value::array();
	for (const auto &p : c.programs)
		scripts.push_back(out::Value{{"path", p->path}, {"translated", p->translated}, {"cached", p->from_cache}});
	v["scripts"] = scripts;
	v["tls"] = config::tls_mode_name(c.tls.mode);
	if (check)
		v["valid"] = true;
	return v;
}

int run(Cli &cli, RunArgs args)
{
	args.state_dir = cli.g.state_dir;
	config::Config c = load(args);
	if (args.check) {
		cli.report(summary(c, true));
		return 0;
	}
	proxy::Server server(c, [args] { return load(args); }, cli.bpffs().root());
	server.start();
	if (cli.format() == out::Format::Text) {
		if (!cli.g.quiet) {
			std::string line = "sonic: " + std::to_string(server.workers()) + " worker" +
					   (server.workers() == 1 ? "" : "s") + ", listening on";
			const char *sep = " ";
			for (const config::Listener &l : c.listeners) {
				line += sep + l.address.text() + " (" + config::mode_name(l.mode);
				if (l.mode == config::Mode::Tcp)
					line += " -> " + c.upstreams[l.upstream].name;
				if (l.tls || (c.tls.mode != config::TlsMode::Off && l.mode != config::Mode::Reverse))
					line += l.tls ? ", tls intercept" : std::string(", tls ") + config::tls_mode_name(c.tls.mode);
				line += ")";
				sep = ", ";
			}
			if (c.admin.enabled)
				line += "; admin on " + c.admin.listen.text();
			std::cout << line << std::endl;
		}
	} else {
		cli.print(summary(c, false));
		std::cout << std::flush;
	}
	server.wait();
	return 0;
}

} // namespace

void add_run(Cli &cli)
{
	auto args = std::make_shared<RunArgs>();
	CLI::App *r = cli.command("run", "Run the HTTP proxy in the foreground (reverse, forward or transparent)",
				  [&cli, args] { return run(cli, *args); });
	r->add_option("--script", args->script,
		      "JavaScript worker for every request (Workers-style; see sonic-run(8), SCRIPTS)");
	r->add_option("--config", args->config, "TOML configuration file (see sonic-run(8))");
	r->add_flag("--check", args->check, "Check the configuration and exit without binding");
	r->add_option("--mode", args->mode, "reverse, transparent or forward (without --config)");
	r->add_option("--listen", args->listen, "ADDR:PORT to listen on (without --config; default 127.0.0.1:8080)");
	r->add_option("--upstream", args->upstream, "ADDR:PORT, or http(s)://HOST[:PORT], of the upstream server (reverse mode)");
	r->add_option("--workers", args->workers, "Worker threads (default: one per CPU)");
	r->add_flag("--reuse-port", args->reuse_port,
		    "Join addresses another process listens on (SO_REUSEPORT), as for a binary upgrade");
	r->add_option("--tls", args->tls,
		      "TLS in forward and transparent listeners: intercept, passthrough or off (default: [tls] mode, else off)");
	r->add_option("--passthrough-sni", args->passthrough_sni,
		      "Pass TLS for names matching GLOB through untouched (repeatable; *.example.com, **.example.com)")
		->type_name("GLOB");
	r->add_option("--upstream-ca", args->upstream_ca, "PEM file of extra roots that origins' certificates are verified against")
		->type_name("FILE");
}

} // namespace sonic::cmd
