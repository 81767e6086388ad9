#include "net/ports.hpp"

#include "out/error.hpp"

#include <algorithm>
#include <charconv>

namespace sonic::net {

namespace {
uint16_t parse_port(std::string_view item, std::string_view whole)
{
	unsigned value = 0;
	auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
	if (item.empty() || ec != std::errc() || ptr != item.data() + item.size())
		throw usage_error("parse ports", "'" + std::string(item) + "' is not a port number", std::string(whole));
	if (value == 0 || value > 65535)
		throw usage_error("parse ports", "port " + std::string(item) + " is outside 1-65535", std::string(whole));
	return static_cast<uint16_t>(value);
}
} // namespace

std::vector<PortRange> parse_port_list(std::string_view text)
{
	std::vector<PortRange> ranges;
	if (text.empty())
		throw usage_error("parse ports", "empty port list");
	size_t pos = 0;
	while (pos <= text.size()) {
		size_t comma = text.find(',', pos);
		if (comma == std::string_view::npos)
			comma = text.size();
		std::string_view item = text.substr(pos, comma - pos);
		if (item.empty())
			throw usage_error("parse ports", "empty item in port list", std::string(text));
		size_t dash = item.find('-');
		PortRange r;
		if (dash == std::string_view::npos) {
			r.first = r.last = parse_port(item, text);
		} else {
			r.first = parse_port(item.substr(0, dash), text);
			r.last = parse_port(item.substr(dash + 1), text);
			if (r.last < r.first)
				throw usage_error("parse ports", "range " + std::string(item) + " is reversed", std::string(text));
		}
		ranges.push_back(r);
		pos = comma + 1;
	}
	std::sort(ranges.begin(), ranges.end(), [](const PortRange &a, const PortRange &b) { return a.first < b.first; });
	std::vector<PortRange> merged;
	for (const PortRange &r : ranges) {
		if (!merged.empty() && static_cast<unsigned>(r.first) <= static_cast<unsigned>(merged.back().last) + 1)
			merged.back().last = std::max(merged.back().last, r.last);
		else
			merged.push_back(r);
	}
	return merged;
}

std::string format_port_list(const std::vector<PortRange> &ranges)
{
	std::string s;
	for (const PortRange &r : ranges) {
		if (!s.empty())
			s += ',';
		s += std::to_string(r.first);
		if (r.last != r.first)
			s += '-' + std::to_string(r.last);
	}
	return s;
}

bool port_in(const std::vector<PortRange> &ranges, uint16_t port)
{
	return std::any_of(ranges.begin(), ranges.end(),
			   [port](const PortRange &r) { return port >= r.first && port <= r.last; });
}

} // namespace sonic::net
