#include "sys/caps.hpp"

#include "out/error.hpp"
#include "sys/fs.hpp"

#include <unistd.h>

namespace sonic::sys {

std::string cap_name(Cap cap)
{
	switch (cap) {
	case Cap::NetAdmin:
		return "CAP_NET_ADMIN";
	case Cap::SysAdmin:
		return "CAP_SYS_ADMIN";
	case Cap::Perfmon:
		return "CAP_PERFMON";
	case Cap::Bpf:
		return "CAP_BPF";
	}
	return "CAP_" + std::to_string(static_cast<int>(cap));
}

uint64_t parse_cap_eff(std::string_view status)
{
	constexpr std::string_view tag = "CapEff:";
	size_t pos = 0;
	while (pos < status.size()) {
		size_t end = status.find('\n', pos);
		if (end == std::string_view::npos)
			end = status.size();
		std::string_view line = status.substr(pos, end - pos);
		if (line.substr(0, tag.size()) == tag) {
			std::string hex(line.substr(tag.size()));
			try {
				return std::stoull(hex, nullptr, 16);
			} catch (...) {
				return 0;
			}
		}
		pos = end + 1;
	}
	return 0;
}

uint64_t effective_caps()
{
	return parse_cap_eff(read_file("/proc/self/status"));
}

std::vector<Cap> missing_caps(uint64_t effective, std::initializer_list<Cap> needed)
{
	auto has = [effective](Cap c) { return (effective & (uint64_t{1} << static_cast<int>(c))) != 0; };
	std::vector<Cap> missing;
	for (Cap c : needed) {
		// As in the kernel's bpf_capable() and perfmon_capable().
		bool via_sys_admin = (c == Cap::Bpf || c == Cap::Perfmon) && has(Cap::SysAdmin);
		if (!has(c) && !via_sys_admin)
			missing.push_back(c);
	}
	return missing;
}

void require_caps(const std::string &op, std::initializer_list<Cap> needed)
{
	std::vector<Cap> missing = missing_caps(effective_caps(), needed);
	if (missing.empty())
		return;
	std::string names;
	for (Cap c : missing)
		names += (names.empty() ? "" : ", ") + cap_name(c);
	Error e = env_error(op, "missing capabilit" + std::string(missing.size() == 1 ? "y " : "ies ") + names);
	if (geteuid() != 0)
		e.with_hint("run sonic as root");
	throw e;
}

} // namespace sonic::sys
