// Durations as operators write them, on the command line and in sonic.toml:
// "250ms", "10s", "2m", "1h", "1d", or a bare number of seconds ("1.5").
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace sonic::config {

// nullopt for anything else, a negative value or one past 10^10 ms.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

// The shortest exact text of whole seconds: "90s" -> "1m30s", "0s".
std::string format_duration(std::chrono::seconds duration);

} // namespace sonic::config
