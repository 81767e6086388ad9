// sonic fw { attach | detach | add | del | list | flush | block | unblock }
#include "cli.hpp"

#include "bpf/fw.hpp"
#include "bpf/fw_block.hpp"
#include "config/duration.hpp"
#include "out/log.hpp"
#include "sys/caps.hpp"

#include <ctime>

namespace sonic::cmd {

namespace {

const std::initializer_list<sys::Cap> kCaps = {sys::Cap::Bpf, sys::Cap::NetAdmin, sys::Cap::Perfmon};
const char *const kRuleHelp = "dev IFACE|all {drop | pass | limit RATE [burst N]} [src CIDR] [dst CIDR] "
			      "[proto PROTO] [dport PORTS] [tcp-flags FLAGS] (RATE: N/s, N/m, N/h; PROTO: tcp, udp, "
			      "icmp; FLAGS: syn)";

std::optional<bpf::XdpMode> mode_of(const std::optional<std::string> &text)
{
	if (!text)
		return std::nullopt;
	if (*text == "native")
		return bpf::XdpMode::Native;
	if (*text == "generic")
		return bpf::XdpMode::Generic;
	throw usage_error("fw attach", "mode is native or generic, not '" + *text + "'");
}

std::string dev_of(const std::vector<std::string> &args, const std::string &verb)
{
	Keywords kw(args, {"dev"}, verb);
	auto dev = kw.get("dev");
	if (!dev)
		throw usage_error(verb, "needs dev IFACE").with_usage();
	return *dev;
}

out::Value expires_value(const std::optional<std::chrono::seconds> &in)
{
	return in ? out::Value(in->count()) : out::Value();
}

out::Value rule_row(const bpf::FwRule &r)
{
	const bpf::FwRuleSpec &s = r.spec;
	const bool limit = s.action == bpf::FwAction::Limit;
	return {{"id", r.id},
		{"dev", s.dev.empty() ? "all" : s.dev},
		{"action", std::string(bpf::fw_action_name(s.action))},
		{"rate", limit ? out::Value(bpf::fw_rate_text(s.rate)) : out::Value()},
		{"burst", limit ? out::Value(s.rate.burst) : out::Value()},
		{"src", s.src ? out::Value(net::to_string(*s.src)) : out::Value("any")},
		{"dst", s.dst ? out::Value(net::to_string(*s.dst)) : out::Value("any")},
		{"proto", std::string(bpf::fw_proto_name(s.proto))},
		{"dport", s.dport.empty() ? out::Value() : out::Value(net::format_port_list(s.dport))},
		{"tcp_flags", s.syn ? out::Value("syn") : out::Value()},
		{"packets", r.packets},
		{"bytes", r.bytes},
		{"limited", limit ? out::Value(r.limited) : out::Value()}};
}

out::Value block_row(const bpf::FwBlockEntry &e)
{
	return {{"prefix", net::to_string(e.prefix)},
		{"expires_in", expires_value(e.expires_in)},
		{"added", out::iso_time(e.added)},
		{"reason", e.reason},
		{"packets", e.packets}};
}

int attach(Cli &cli, const std::vector<std::string> &args)
{
	Keywords kw(args, {"dev", "mode"}, "fw attach");
	auto dev = kw.get("dev");
	if (!dev)
		throw usage_error("fw attach", "needs dev IFACE").with_usage();
	auto mode = mode_of(kw.get("mode"));
	sys::require_caps("fw attach", kCaps);
	bpf::FwAttachChange c = bpf::fw_attach(cli.bpffs(), *dev, mode);
	if (!c.fallback.empty())
		log::warn(*dev + ": " + c.fallback + "; attached in generic mode, which sees packets after the kernel "
					      "has allocated them");
	cli.report({{"changed", c.changed},
		    {"dev", *dev},
		    {"mode", std::string(bpf::xdp_mode_name(c.mode))},
		    {"fallback", c.fallback.empty() ? out::Value() : out::Value(c.fallback)},
		    {"programs_loaded", c.loaded}});
	return 0;
}

int detach(Cli &cli, const std::vector<std::string> &args)
{
	const std::string dev = dev_of(args, "fw detach");
	sys::require_caps("fw detach", kCaps);
	cli.report({{"changed", bpf::fw_detach(cli.bpffs(), dev)}, {"dev", dev}});
	return 0;
}

int add(Cli &cli, const std::vector<std::string> &args, bool force)
{
	bpf::FwRuleSpec spec = bpf::parse_fw_rule(args);
	bpf::guard_ssh(spec, bpf::ssh_session(), force);
	sys::require_caps("fw add", kCaps);
	bpf::FwRuleChange c = bpf::fw_add(cli.bpffs(), spec);
	if (!c.dev_attached)
		log::warn(spec.dev.empty() ? "fw is attached to no interface: run `sonic fw attach dev IFACE`"
					   : "fw is not attached to " + spec.dev + ": run `sonic fw attach dev " + spec.dev + "`");
	cli.report({{"changed", c.changed},
		    {"id", c.rule.id},
		    {"rule", bpf::fw_rule_text(c.rule.spec)},
		    {"programs_loaded", c.loaded}});
	return 0;
}

int del(Cli &cli, const std::vector<std::string> &args)
{
	bpf::FwRuleSpec spec = bpf::parse_fw_rule(args);
	sys::require_caps("fw del", kCaps);
	bpf::FwRuleChange c = bpf::fw_del(cli.bpffs(), spec);
	cli.report({{"changed", c.changed}, {"rule", bpf::fw_rule_text(c.rule.spec)}});
	return 0;
}

int list(Cli &cli)
{
	sys::require_caps("fw list", kCaps);
	const bpf::Bpffs fs = cli.bpffs();
	out::Value attachments = out::Value::array();
	for (const bpf::FwAttachment &a : bpf::fw_attachments(fs)) {
		std::string state = !a.this_netns    ? "other network namespace"
				    : a.ifindex == 0 ? "interface gone"
				    : a.mode	     ? "active"
						     : "not running (replaced?)";
		attachments.push_back({{"dev", a.dev.empty() ? out::Value() : out::Value(a.dev)},
				       {"ifindex", a.ifindex},
				       {"mode", a.mode ? out::Value(std::string(bpf::xdp_mode_name(*a.mode))) : out::Value()},
				       {"state", state}});
	}
	out::Value rules = out::Value::array();
	for (const bpf::FwRule &r : bpf::fw_rules(fs))
		rules.push_back(rule_row(r));
	out::Value blocks = out::Value::array();
	for (const bpf::FwBlockEntry &e : bpf::fw_blocklist(fs))
		blocks.push_back(block_row(e));
	cli.print({{"attachments", attachments}, {"rules", rules}, {"blocklist", blocks}});
	return 0;
}

int flush(Cli &cli)
{
	sys::require_caps("fw flush", kCaps);
	bpf::FwFlush f = bpf::fw_flush(cli.bpffs());
	cli.report({{"changed", f.changed}, {"rules", f.rules}, {"blocks", f.blocks}, {"dead_links", f.dead_links}});
	return 0;
}

int block(Cli &cli, const std::vector<std::string> &args, bool force)
{
	if (args.empty())
		throw usage_error("fw block", "needs an address or prefix").with_usage();
	const net::Cidr prefix = bpf::parse_block_target(args.front());
	Keywords kw(std::vector<std::string>(args.begin() + 1, args.end()), {"for", "reason"}, "fw block");
	std::optional<std::chrono::seconds> ttl;
	if (auto d = kw.get("for")) {
		auto ms = config::parse_duration(*d);
		if (!ms || ms->count() < 1000)
			throw usage_error("fw block", "'" + *d + "' is not a duration of a second or more (30s, 10m, 2h, 1d)");
		ttl = std::chrono::duration_cast<std::chrono::seconds>(*ms);
	}
	const std::string reason = kw.get("reason").value_or("");
	bpf::check_block_reason(reason);
	bpf::guard_ssh(prefix, bpf::ssh_session(), force);
	sys::require_caps("fw block", kCaps);
	bpf::FwBlockChange c = bpf::fw_block(cli.bpffs(), prefix, ttl, reason);
	cli.report({{"changed", c.changed},
		    {"prefix", net::to_string(c.entry.prefix)},
		    {"expires_in", expires_value(c.entry.expires_in)},
		    {"reason", c.entry.reason},
		    {"programs_loaded", c.loaded}});
	return 0;
}

int unblock(Cli &cli, const std::vector<std::string> &args)
{
	if (args.size() != 1)
		throw usage_error("fw unblock", "needs exactly one address or prefix").with_usage();
	const net::Cidr prefix = net::parse_cidr(args.front());
	sys::require_caps("fw unblock", kCaps);
	bpf::FwUnblock u = bpf::fw_unblock(cli.bpffs(), prefix);
	if (u.still_blocked_by)
		log::warn(net::to_string(prefix) + " stays blocked by " + net::to_string(*u.still_blocked_by));
	cli.report({{"changed", u.changed},
		    {"prefix", net::to_string(prefix)},
		    {"still_blocked_by",
		     u.still_blocked_by ? out::Value(net::to_string(*u.still_blocked_by)) : out::Value()}});
	return 0;
}

using Args = std::shared_ptr<std::vector<std::string>>;

} // namespace

void add_fw(Cli &cli)
{
	CLI::App *fw = cli.object("fw", "Edge firewall in XDP: rules, rate limits, a blocklist, a flow table");

	Args attach_args = std::make_shared<std::vector<std::string>>();
	cli.verb(fw, "attach", "Run the firewall on an interface (repeating it changes nothing)",
		 [&cli, attach_args] { return attach(cli, *attach_args); })
		->add_option("args", *attach_args, "dev IFACE [mode MODE] (MODE: native or generic)");

	Args detach_args = std::make_shared<std::vector<std::string>>();
	cli.verb(fw, "detach", "Stop the firewall on an interface, leaving it as it was",
		 [&cli, detach_args] { return detach(cli, *detach_args); })
		->add_option("args", *detach_args, "dev IFACE");

	Args add_args = std::make_shared<std::vector<std::string>>();
	auto add_force = std::make_shared<bool>(false);
	CLI::App *a = cli.verb(fw, "add", "Add a rule after the others (repeating it changes nothing)",
			       [&cli, add_args, add_force] { return add(cli, *add_args, *add_force); });
	a->add_option("args", *add_args, kRuleHelp);
	a->add_flag("--force", *add_force, "Add a drop rule even if it cuts off the SSH session sonic runs in");

	Args del_args = std::make_shared<std::vector<std::string>>();
	cli.verb(fw, "del", "Delete the rule with this match and action",
		 [&cli, del_args] { return del(cli, *del_args); })
		->add_option("args", *del_args, kRuleHelp);

	cli.verb(fw, "list", "List the attachments, the rules with their hits, and the blocklist",
		 [&cli] { return list(cli); });
	cli.verb(fw, "flush", "Remove every rule and blocklist entry (attachments stay)", [&cli] { return flush(cli); });

	Args block_args = std::make_shared<std::vector<std::string>>();
	auto block_force = std::make_shared<bool>(false);
	CLI::App *b = cli.verb(fw, "block", "Drop everything from an address or prefix, for a while or until unblocked",
			       [&cli, block_args, block_force] { return block(cli, *block_args, *block_force); });
	b->add_option("args", *block_args, "ADDR [for DURATION] [reason TEXT]");
	b->add_flag("--force", *block_force, "Block even the source of the SSH session sonic runs in");

	Args unblock_args = std::make_shared<std::vector<std::string>>();
	cli.verb(fw, "unblock", "Remove the blocklist entry of an address or prefix",
		 [&cli, unblock_args] { return unblock(cli, *unblock_args); })
		->add_option("args", *unblock_args, "ADDR");
}

} // namespace sonic::cmd
