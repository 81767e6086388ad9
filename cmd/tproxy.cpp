// sonic tproxy { add SPEC | del SPEC | list | flush }
#include "cli.hpp"

#include "bpf/probe.hpp"
#include "bpf/steer.hpp"
#include "net/listeners.hpp"
#include "out/log.hpp"
#include "sys/caps.hpp"

#include <sstream>
#include <sys/socket.h>

namespace sonic::cmd {

namespace {

const std::initializer_list<sys::Cap> kCaps = {sys::Cap::Bpf, sys::Cap::NetAdmin, sys::Cap::Perfmon};
const char *const kSpecHelp =
	"{dev IFACE | cgroup PATH} proto PROTO dport PORTS [dst CIDR] to ADDR:PORT [mark MARK] [table N]";

bpf::SteerSpec spec_of(const std::vector<std::string> &args, const std::string &verb)
{
	Keywords kw(args, {"dev", "cgroup", "proto", "dport", "dst", "to", "mark", "table"}, verb);
	bpf::SteerWords w;
	w.dev = kw.get("dev");
	w.cgroup = kw.get("cgroup");
	w.proto = kw.get("proto");
	w.dport = kw.get("dport");
	w.dst = kw.get("dst");
	w.to = kw.get("to");
	w.mark = kw.get("mark");
	w.table = kw.get("table");
	return bpf::parse_steer_spec(w);
}

std::string hex(uint32_t v)
{
	std::ostringstream s;
	s << "0x" << std::hex << v;
	return s.str();
}

out::Value rule_value(const bpf::SteerRule &r)
{
	const bool dev = r.kind == bpf::SteerKind::Dev;
	out::Value v = {{"kind", dev ? "dev" : "cgroup"},
			{dev ? "dev" : "cgroup", r.where.empty() ? out::Value() : out::Value(r.where)},
			{"family", r.family == AF_INET ? "ipv4" : "ipv6"},
			{"proto", "tcp"},
			{"dport", net::format_port_list(r.ports)},
			{"dst", r.dst ? out::Value(net::to_string(*r.dst)) : out::Value("any")},
			{"to", net::to_string(r.to)}};
	if (dev) {
		v["mark"] = hex(r.mark);
		v["table"] = r.table;
	}
	return v;
}

// Before Linux 6.5, bpf_sk_assign() refuses a listener that set
// SO_REUSEPORT, and steer_tc drops the SYNs it cannot assign.
void warn_if_unassignable(const bpf::SteerRule &rule)
{
	const bpf::ProbeResult &probe = bpf::sk_assign_reuseport();
	if (probe.available != false)
		return;
	log::warn("tproxy add dev: the listener at " + net::to_string(rule.to) + " must not set SO_REUSEPORT: " +
		  probe.detail + "; SYNs that cannot be assigned are dropped and counted as drop_assign_failed in "
		  "`sonic stats steer`");
}

int add(Cli &cli, const std::vector<std::string> &args)
{
	bpf::SteerSpec spec = spec_of(args, "tproxy add");
	sys::require_caps("tproxy add", kCaps);
	bpf::SteerChange c = bpf::steer_add(cli.bpffs(), spec);
	out::Value v = {{"changed", c.changed}, {"rule", bpf::steer_rule_text(c.rule)}};
	v["listener"] = !net::listeners_of(c.rule.to).empty() ? "listening" : "no listener";
	if (c.rule.kind == bpf::SteerKind::Dev)
		warn_if_unassignable(c.rule);
	v["programs_loaded"] = c.loaded;
	cli.report(v);
	return 0;
}

int del(Cli &cli, const std::vector<std::string> &args)
{
	bpf::SteerSpec spec = spec_of(args, "tproxy del");
	sys::require_caps("tproxy del", kCaps);
	bpf::SteerChange c = bpf::steer_del(cli.bpffs(), spec);
	cli.report({{"changed", c.changed}, {"rule", bpf::steer_rule_text(c.rule)}});
	return 0;
}

int list(Cli &cli)
{
	sys::require_caps("tproxy list", kCaps);
	out::Value rules = out::Value::array();
	for (const bpf::SteerRuleState &s : bpf::steer_list(cli.bpffs())) {
		out::Value row = rule_value(s.rule);
		const bool dev = s.rule.kind == bpf::SteerKind::Dev;
		if (dev && !s.this_netns) {
			row["dev"] = "ifindex " + std::to_string(s.rule.scope);
			row["state"] = "other network namespace";
		} else {
			std::string state = s.attached ? "active" : dev ? "filter missing" : "links missing";
			if (s.attached && !s.routing)
				state = "routing missing";
			row["state"] = state;
		}
		row["listener"] = s.this_netns ? (s.listener ? "listening" : "no listener") : "unknown";
		rules.push_back(row);
	}
	cli.print({{"rules", rules}});
	return 0;
}

int flush(Cli &cli)
{
	sys::require_caps("tproxy flush", kCaps);
	bpf::SteerFlush f = bpf::steer_flush(cli.bpffs());
	cli.report({{"changed", f.changed},
		   {"rules", f.rules},
		   {"filters", f.filters},
		   {"qdiscs", f.qdiscs},
		   {"routing", f.routes},
		   {"links", f.links},
		   {"other_netns_rules", f.other_netns_rules}});
	return 0;
}

} // namespace

void add_tproxy(Cli &cli)
{
	CLI::App *tproxy = cli.object("tproxy", "Transparent steering of TCP connections to a proxy's listener");

	auto add_args = std::make_shared<std::vector<std::string>>();
	CLI::App *a = cli.verb(tproxy, "add",
			       "Steer matching connections to ADDR:PORT (repeating it changes nothing)",
			       [&cli, add_args] { return add(cli, *add_args); });
	a->add_option("args", *add_args, kSpecHelp);

	auto del_args = std::make_shared<std::vector<std::string>>();
	CLI::App *d = cli.verb(tproxy, "del", "Delete the rule with this SPEC",
			       [&cli, del_args] { return del(cli, *del_args); });
	d->add_option("args", *del_args, kSpecHelp);

	cli.verb(tproxy, "list", "List the rules the kernel holds, their attachments and listeners",
		 [&cli] { return list(cli); });
	cli.verb(tproxy, "flush", "Remove every steering rule, filter, route and link sonic made",
		 [&cli] { return flush(cli); });
}

} // namespace sonic::cmd
