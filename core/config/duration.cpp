#include "config/duration.hpp"

#include <charconv>
#include <cmath>

namespace sonic::config {

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text)
{
	double v = 0;
	auto r = std::from_chars(text.data(), text.data() + text.size(), v);
	if (text.empty() || r.ec != std::errc())
		return std::nullopt;
	const std::string_view unit(r.ptr, static_cast<size_t>(text.data() + text.size() - r.ptr));
	const double scale = unit == "ms"			 ? 1
			     : unit == "s" || unit.empty() ? 1000
			     : unit == "m"		 ? 60000
			     : unit == "h"		 ? 3600000
			     : unit == "d"		 ? 86400000
						 : -1;
	const double ms = v * scale;
	if (scale < 0 || !(ms >= 0) || !std::isfinite(ms) || ms > 1e10)
		return std::nullopt;
	return std::chrono::milliseconds(static_cast<long long>(std::llround(ms)));
}

std::string format_duration(std::chrono::seconds duration)
{
	long long s = duration.count();
	if (s <= 0)
		return "0s";
	std::string out;
	for (auto [unit, size] : {std::pair{"d", 86400LL}, {"h", 3600LL}, {"m", 60LL}, {"s", 1LL}})
		if (s >= size) {
			out += std::to_string(s / size) + unit;
			s %= size;
		}
	return out;
}

} // namespace sonic::config
