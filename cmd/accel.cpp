// sonic accel { enable [cgroup PATH] [ports PORTS] [scope all|proxy] | disable [cgroup PATH] | status }
#include "cli.hpp"

#include "bpf/accel.hpp"
#include "net/ports.hpp"
#include "out/error.hpp"
#include "sys/caps.hpp"

namespace sonic::cmd {

namespace {

const std::initializer_list<sys::Cap> kCaps = {sys::Cap::Bpf, sys::Cap::NetAdmin, sys::Cap::Perfmon};

out::Value ports_value(const bpf::PortFilter &ports)
{
	return ports ? out::Value(net::format_port_list(*ports)) : out::Value("all");
}

int enable(Cli &cli, const std::vector<std::string> &args)
{
	Keywords kw(args, {"cgroup", "ports", "scope"}, "accel enable");
	bpf::PortFilter ports;
	if (auto p = kw.get("ports"))
		ports = net::parse_port_list(*p);
	bpf::AccelScope scope = bpf::AccelScope::All;
	if (auto text = kw.get("scope")) {
		auto parsed = bpf::parse_accel_scope(*text);
		if (!parsed)
			throw usage_error("accel enable", "scope must be all or proxy", *text);
		scope = *parsed;
	}
	sys::require_caps("accel enable", kCaps);
	bpf::AccelEnableResult r = bpf::accel_enable(cli.bpffs(), kw.get("cgroup"), ports, scope);
	cli.report({{"changed", r.changed},
		   {"cgroup", r.cgroup.path},
		   {"cgroup_id", r.cgroup.id},
		   {"ports", ports_value(r.ports)},
		   {"scope", std::string(bpf::accel_scope_name(r.scope))},
		   {"programs_loaded", r.loaded},
		   {"release_path", std::string(bpf::accel_release_path_name(r.release_path))},
		   {"local_addresses", r.local_addresses}});
	return 0;
}

int disable(Cli &cli, const std::vector<std::string> &args, double timeout)
{
	Keywords kw(args, {"cgroup"}, "accel disable");
	auto wait = seconds_arg(timeout, "--timeout");
	sys::require_caps("accel disable", kCaps);
	bpf::AccelDisableResult r = bpf::accel_disable(cli.bpffs(), kw.get("cgroup"), wait);
	cli.report({{"changed", r.changed},
		   {"cgroup", r.cgroup.path},
		   {"cgroup_id", r.cgroup.id},
		   {"detached", r.detached},
		   {"released_sockets", r.release.released},
		   {"draining_sockets", r.release.pending},
		   {"draining_bytes", r.release.pending_bytes},
		   {"removed_cgroup_ids", r.removed_cgroups}});
	return 0;
}

int status(Cli &cli)
{
	sys::require_caps("accel status", kCaps);
	bpf::AccelStatus s = bpf::accel_status(cli.bpffs());
	out::Value cgroups = out::Value::array();
	for (const bpf::AccelCgroup &c : s.cgroups)
		cgroups.push_back({{"cgroup", c.path.empty() ? out::Value() : out::Value(c.path)},
				   {"cgroup_id", c.cgroup_id},
				   {"ports", ports_value(c.ports)},
				   {"scope", std::string(bpf::accel_scope_name(c.scope))},
				   {"link_id", c.link_id}});
	out::Value listeners = out::Value::array();
	for (const bpf::AccelProxyListener &l : s.proxy_listeners)
		listeners.push_back({{"address", l.address}, {"netns", l.netns}, {"pid", l.pid}, {"alive", l.alive}});
	cli.print({{"enabled", !s.cgroups.empty()},
		   {"loaded", s.loaded},
		   {"release_path", s.loaded ? out::Value(std::string(bpf::accel_release_path_name(s.release_path)))
					     : out::Value()},
		   {"msg_attached", s.msg_attached},
		   {"sockets", s.sockets},
		   {"draining_sockets", s.draining},
		   {"draining_bytes", s.pending_bytes},
		   {"local_addresses", s.local_addresses},
		   {"cgroups", cgroups},
		   {"proxy_listeners", listeners}});
	return 0;
}

} // namespace

void add_accel(Cli &cli)
{
	CLI::App *accel = cli.object("accel", "Local socket acceleration: sockops + sk_msg over a SOCKHASH");

	auto enable_args = std::make_shared<std::vector<std::string>>();
	CLI::App *en = cli.verb(accel, "enable",
				"Accelerate TCP connections between local sockets of processes in a cgroup "
				"(default: the cgroup v2 root)",
				[&cli, enable_args] { return enable(cli, *enable_args); });
	en->add_option("args", *enable_args,
		       "[cgroup PATH] [ports PORTS] [scope SCOPE]; SCOPE is all (every local connection) or proxy "
		       "(only the legs of sonic run)");

	auto disable_args = std::make_shared<std::vector<std::string>>();
	auto timeout = std::make_shared<double>(5.0);
	CLI::App *dis = cli.verb(accel, "disable",
				 "Stop accelerating a cgroup and hand its sockets back to the normal stack, losing no data",
				 [&cli, disable_args, timeout] { return disable(cli, *disable_args, *timeout); });
	dis->add_option("args", *disable_args, "[cgroup PATH]");
	dis->add_option("--timeout", *timeout, "Seconds to wait for readers to drain redirected data")
		->capture_default_str();

	cli.verb(accel, "status", "Show the enabled cgroups, port filters and accelerated sockets",
		 [&cli] { return status(cli); });
}

} // namespace sonic::cmd
