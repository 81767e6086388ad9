// sonic's logger: one line per message on stderr. -q keeps errors only,
// -d adds debug output (libbpf's messages and verifier logs among them).
#pragma once

#include <string_view>

namespace sonic::log {

enum class Level { Error = 0, Warn = 1, Info = 2, Debug = 3 };

void set_level(Level level);
Level level();
bool enabled(Level level);

void write(Level level, std::string_view message);
inline void error(std::string_view m) { write(Level::Error, m); }
inline void warn(std::string_view m) { write(Level::Warn, m); }
inline void info(std::string_view m) { write(Level::Info, m); }
inline void debug(std::string_view m) { write(Level::Debug, m); }

} // namespace sonic::log
