#include "out/log.hpp"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

namespace sonic::log {

namespace {
std::atomic<Level> current{Level::Info};
std::mutex write_lock;

const char *prefix(Level level)
{
	switch (level) {
	case Level::Error:
		return "Error: ";
	case Level::Warn:
		return "Warning: ";
	case Level::Info:
		return "";
	case Level::Debug:
		return "debug: ";
	}
	return "";
}
} // namespace

void set_level(Level level) { current = level; }
Level level() { return current; }
bool enabled(Level level) { return static_cast<int>(level) <= static_cast<int>(current.load()); }

void write(Level level, std::string_view message)
{
	if (!enabled(level))
		return;
	std::string line = prefix(level);
	line.append(message);
	while (!line.empty() && line.back() == '\n')
		line.pop_back();
	line.push_back('\n');
	std::lock_guard<std::mutex> guard(write_lock);
	std::fwrite(line.data(), 1, line.size(), stderr);
}

} // namespace sonic::log
