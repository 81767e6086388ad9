#include "sys/fs.hpp"

#include "out/error.hpp"

#include <cerrno>
#include <fstream>
#include <sstream>

namespace sonic::sys {

std::optional<std::string> try_read_file(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	if (!in)
		return std::nullopt;
	std::ostringstream ss;
	ss << in.rdbuf();
	return ss.str();
}

std::string read_file(const std::string &path)
{
	std::ifstream in(path, std::ios::binary);
	if (!in)
		throw errno_error("read", errno ? errno : ENOENT, path);
	std::ostringstream ss;
	ss << in.rdbuf();
	return ss.str();
}

std::optional<long long> read_int_file(const std::string &path)
{
	auto text = try_read_file(path);
	if (!text)
		return std::nullopt;
	try {
		return std::stoll(*text);
	} catch (...) {
		return std::nullopt;
	}
}

} // namespace sonic::sys
