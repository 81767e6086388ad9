// Typed reads of one TOML file's nodes, shared by `sonic run`'s config and
// `sonic apply`. Every failure is a usage error of the reader's operation,
// "SOURCE:LINE:COL: why", so that a typo names its line.
#pragma once

#include "out/error.hpp"

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <toml++/toml.h>
#include <vector>

namespace sonic::config {

class TomlReader {
public:
	// SOURCE names the file in messages; OP is the operation they are
	// errors of ("config", "apply").
	TomlReader(std::string source, std::string op) : source_(std::move(source)), op_(std::move(op)) {}

	const std::string &source() const { return source_; }

	// "SOURCE:LINE:COL" of NODE.
	std::string at(const toml::node &node) const;

	[[noreturn]] void fail(const toml::node &node, const std::string &why) const;
	// The same for an error a shared parser raised about NODE's value.
	[[noreturn]] void fail(const toml::node &node, const Error &e) const;

	// Fails on a key of TABLE that is not in KNOWN: a typo is never ignored.
	void check_keys(const toml::table &table, std::initializer_list<std::string_view> known,
			const std::string &section) const;

	std::optional<std::string> string(const toml::table &t, std::string_view key) const;
	std::optional<bool> boolean(const toml::table &t, std::string_view key) const;
	std::optional<int64_t> integer(const toml::table &t, std::string_view key, int64_t min, int64_t max) const;
	// An integer or a decimal number from MIN to MAX.
	std::optional<double> number(const toml::table &t, std::string_view key, double min, double max) const;
	// Seconds as a number (1.5) or a string with a unit ("250ms", "10s", "2m", "1h").
	std::optional<std::chrono::milliseconds> duration(const toml::table &t, std::string_view key) const;

	// The table [KEY], or null when absent.
	const toml::table *table(const toml::table &t, std::string_view key) const;
	// The tables of [[KEY]], none when absent.
	std::vector<const toml::table *> tables(const toml::table &t, std::string_view key) const;

private:
	std::string source_;
	std::string op_;
};

} // namespace sonic::config
