// libFuzzer target: `sonic tproxy add|del SPEC`: the words of the input,
// taken as KEYWORD VALUE pairs the way the command line gives them, parsed
// into a rule. A bad SPEC is a usage error (exit 1), never anything else;
// a good one prints back to the same rule.
#include "bpf/steer_spec.hpp"
#include "out/error.hpp"

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

namespace {

void require(bool ok, const char *what)
{
	if (!ok) {
		std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
		std::abort();
	}
}

// The words in TEXT as the command line's KEYWORD VALUE pairs; nothing
// when a keyword is unknown, repeated or has no value (the CLI's usage
// errors, checked by its own tests).
std::optional<sonic::bpf::SteerWords> words_of(const std::string &text)
{
	std::istringstream in(text);
	sonic::bpf::SteerWords w;
	std::string key, value;
	while (in >> key) {
		if (!(in >> value))
			return std::nullopt;
		std::optional<std::string> *slot = key == "dev"      ? &w.dev
						   : key == "cgroup" ? &w.cgroup
						   : key == "proto"  ? &w.proto
						   : key == "dport"  ? &w.dport
						   : key == "dst"    ? &w.dst
						   : key == "to"     ? &w.to
						   : key == "mark"   ? &w.mark
						   : key == "table"  ? &w.table
								     : nullptr;
		if (!slot || *slot)
			return std::nullopt;
		*slot = value;
	}
	return w;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	using namespace sonic;
	auto w = words_of(std::string(reinterpret_cast<const char *>(data), size));
	if (!w)
		return 0;
	bpf::SteerSpec s;
	try {
		s = bpf::parse_steer_spec(*w);
	} catch (const Error &e) {
		require(e.kind() == ErrorKind::Usage, "a bad SPEC is a usage error");
		return 0;
	}
	require(!s.where.empty(), "a rule without an interface or cgroup");
	require(!s.ports.empty() && s.ports.size() <= SONIC_STEER_MAX_RANGES, "a rule's port count");
	for (const net::PortRange &r : s.ports)
		require(r.first != 0 && r.first <= r.last, "a bad port range");
	require(s.to.port != 0, "a target on port 0");
	require(!s.dst || s.dst->addr.family == s.to.addr.family, "dst and to of different families");
	require(s.mark != 0 && s.mark != bpf::kSteerBypassMark, "a reserved mark");
	require(net::parse_endpoint(net::to_string(s.to)) == s.to, "the target does not print back");
	require(net::parse_port_list(net::format_port_list(s.ports)) == s.ports, "the ports do not print back");
	if (s.dst)
		require(net::parse_cidr(net::to_string(*s.dst)) == *s.dst, "dst does not print back");
	return 0;
}
