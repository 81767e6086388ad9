#include "bpf/steer_spec.hpp"

#include "out/error.hpp"

#include <charconv>
#include <net/if.h>
#include <string_view>

namespace sonic::bpf {

namespace {

uint32_t parse_u32(const std::string &text, const std::string &what)
{
	uint32_t value = 0;
	int base = 10;
	std::string_view s = text;
	if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s.remove_prefix(2);
	}
	auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value, base);
	if (s.empty() || ec != std::errc() || ptr != s.data() + s.size())
		throw usage_error("parse " + what, "'" + text + "' is not a number from 0 to 4294967295");
	return value;
}

} // namespace

SteerSpec parse_steer_spec(const SteerWords &w)
{
	SteerSpec s;
	if (w.dev && w.cgroup)
		throw usage_error("tproxy", "give either dev or cgroup, not both").with_usage();
	if (!w.dev && !w.cgroup)
		throw usage_error("tproxy", "a rule needs dev IFACE or cgroup PATH").with_usage();
	if (w.dev) {
		s.kind = SteerKind::Dev;
		s.where = *w.dev;
		if (s.where.empty() || s.where.size() >= IF_NAMESIZE)
			throw usage_error("find interface", "not a valid interface name", s.where);
	} else {
		s.kind = SteerKind::Cgroup;
		s.where = *w.cgroup;
		if (s.where.empty())
			throw usage_error("find cgroup", "empty cgroup path");
	}
	if (!w.proto)
		throw usage_error("tproxy", "a rule needs proto tcp").with_usage();
	if (*w.proto != "tcp")
		throw usage_error("parse protocol", "only tcp is steered", *w.proto);
	if (!w.dport)
		throw usage_error("tproxy", "a rule needs dport PORTS").with_usage();
	s.ports = net::parse_port_list(*w.dport);
	if (s.ports.size() > SONIC_STEER_MAX_RANGES)
		throw usage_error("parse ports",
				  "at most " + std::to_string(SONIC_STEER_MAX_RANGES) + " ports or ranges per rule", *w.dport);
	if (!w.to)
		throw usage_error("tproxy", "a rule needs to ADDR:PORT").with_usage();
	s.to = net::parse_endpoint(*w.to);
	if (w.dst) {
		s.dst = net::parse_cidr(*w.dst);
		if (s.dst->addr.family != s.to.addr.family)
			throw usage_error("parse rule", "dst " + *w.dst + " and to " + *w.to + " are of different families");
		if (s.dst->prefix == 0)
			s.dst.reset(); // 0.0.0.0/0 is every destination of the family
	}
	if (s.kind == SteerKind::Cgroup && (w.mark || w.table))
		throw usage_error("parse rule", "mark and table apply to dev rules only (cgroup rules route nothing)");
	if (w.mark) {
		s.mark = parse_u32(*w.mark, "mark");
		if (s.mark == 0)
			throw usage_error("parse mark", "mark 0 would match every unmarked packet", *w.mark);
		if (s.mark == kSteerBypassMark)
			throw usage_error("parse mark", "reserved for the proxy's own upstream connections", *w.mark);
	}
	if (w.table) {
		s.table = parse_u32(*w.table, "table");
		if (s.table == 0 || s.table == 253 || s.table == 254 || s.table == 255)
			throw usage_error("parse table", "tables 0 and 253-255 belong to the kernel", *w.table);
	}
	return s;
}

} // namespace sonic::bpf
