#include "sys/mounts.hpp"

#include "sys/fs.hpp"

#include <sstream>

namespace sonic::sys {

namespace {
bool is_octal(char c) { return c >= '0' && c <= '7'; }

std::string unescape(const std::string &field)
{
	std::string out;
	for (size_t i = 0; i < field.size(); ++i) {
		if (field[i] == '\\' && i + 3 < field.size() && is_octal(field[i + 1]) &&
		    is_octal(field[i + 2]) && is_octal(field[i + 3])) {
			out.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 +
							(field[i + 3] - '0')));
			i += 3;
		} else {
			out.push_back(field[i]);
		}
	}
	return out;
}
} // namespace

std::vector<Mount> parse_mounts(std::string_view text)
{
	std::vector<Mount> mounts;
	std::istringstream in{std::string(text)};
	std::string line;
	while (std::getline(in, line)) {
		std::istringstream fields(line);
		Mount m;
		if (!(fields >> m.source >> m.target >> m.fstype >> m.options))
			continue;
		m.source = unescape(m.source);
		m.target = unescape(m.target);
		mounts.push_back(std::move(m));
	}
	return mounts;
}

std::vector<Mount> read_mounts()
{
	return parse_mounts(try_read_file("/proc/self/mounts").value_or(""));
}

std::optional<std::string> cgroup2_root(const std::vector<Mount> &mounts)
{
	for (const Mount &m : mounts)
		if (m.fstype == "cgroup2")
			return m.target;
	return std::nullopt;
}

} // namespace sonic::sys
