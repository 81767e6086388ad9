// A guard in front of the TOML parser Debian 12 ships (toml++ 3.3.0): its
// test for Unicode whitespace reaches __builtin_unreachable() for some
// non-ASCII code points (upstream issues marzer/tomlplusplus#190 and #295,
// fixed after 3.3.0), which is undefined behaviour in the library sonic
// links. It runs that test on every code point it reads outside a comment:
// bare text, keys and, in places, string values. The guard finds the first
// such code point outside a comment so that the file is refused with a
// message instead.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <toml++/toml.h>

namespace sonic::config {

struct TextPosition {
	size_t line = 1;   // from 1
	size_t column = 1; // code points from 1, as toml++ counts them
	char32_t code_point = 0;
};

// Whether toml++ 3.3.0's whitespace test is undefined for C.
bool trips_toml_whitespace_test(char32_t c);

// The first code point of TEXT outside a comment that trips the test.
std::optional<TextPosition> first_toml_defect(std::string_view text);

// TEXT parsed as TOML, after the guard. Every defect and syntax error is a
// usage error of OP naming SOURCE:LINE:COLUMN.
toml::table parse_toml(std::string_view text, const std::string &source, const char *op);

} // namespace sonic::config
