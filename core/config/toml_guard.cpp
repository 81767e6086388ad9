#include "config/toml_guard.hpp"

#include "out/error.hpp"

#include <cstdio>

namespace sonic::config {

namespace {

// One UTF-8 sequence at TEXT[I]: its code point and length. A malformed
// byte reads as itself, one byte long (toml++ reports it).
std::pair<char32_t, size_t> decode(std::string_view text, size_t i)
{
	const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
	const unsigned char b = byte(i);
	size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
	if (len <= 1 || i + len > text.size())
		return {b, 1};
	char32_t c = b & (0x7F >> len);
	for (size_t k = 1; k < len; ++k) {
		if ((byte(i + k) & 0xC0) != 0x80)
			return {b, 1};
		c = (c << 6) | (byte(i + k) & 0x3F);
	}
	return {c, len};
}

} // namespace

bool trips_toml_whitespace_test(char32_t c)
{
	// toml++ 3.3.0 splits U+00A0..U+FEFF into blocks of 0x3FA code points and
	// handles blocks 5 and 7 in a switch whose default is unreachable; blocks
	// 0, 11 and 63 get there, except for the three spaces it names.
	if (c < 0xA0 || c > 0xFEFF || c == 0xA0 || c == 0x3000 || c == 0xFEFF)
		return false;
	const auto block = (c - 0xA0) / 0x3FA;
	return block == 0 || block == 11 || block == 63;
}

std::optional<TextPosition> first_toml_defect(std::string_view text)
{
	// Only comments are safe, so only they are told apart: by following
	// strings (a '#' in a string starts no comment) and comments (nor does a
	// quote in a comment start a string).
	enum class In { Text, Comment, Basic, MultiBasic, Literal, MultiLiteral };
	In in = In::Text;
	bool escaped = false;
	TextPosition pos;
	auto starts = [&](size_t i, std::string_view s) { return text.substr(i, s.size()) == s; };
	for (size_t i = 0; i < text.size();) {
		auto [c, len] = decode(text, i);
		size_t width = 1; // code points: 3 for a string's delimiter
		bool comment = false;
		switch (in) {
		case In::Text:
			if (c == '#')
				in = In::Comment;
			else if (starts(i, "\"\"\""))
				in = In::MultiBasic, len = width = 3;
			else if (c == '"')
				in = In::Basic;
			else if (starts(i, "'''"))
				in = In::MultiLiteral, len = width = 3;
			else if (c == '\'')
				in = In::Literal;
			break;
		case In::Comment:
			comment = true;
			if (c == '\n')
				in = In::Text;
			break;
		case In::Basic:
		case In::MultiBasic:
			if (escaped)
				escaped = false;
			else if (c == '\\')
				escaped = true;
			else if (in == In::MultiBasic && starts(i, "\"\"\""))
				in = In::Text, len = width = 3;
			else if (in == In::Basic && (c == '"' || c == '\n'))
				in = In::Text;
			break;
		case In::Literal:
			if (c == '\'' || c == '\n')
				in = In::Text;
			break;
		case In::MultiLiteral:
			if (starts(i, "'''"))
				in = In::Text, len = width = 3;
			break;
		}
		if (!comment && trips_toml_whitespace_test(c)) {
			pos.code_point = c;
			return pos;
		}
		if (c == '\n') {
			++pos.line;
			pos.column = 1;
		} else {
			pos.column += width;
		}
		i += len;
	}
	return std::nullopt;
}

toml::table parse_toml(std::string_view text, const std::string &source, const char *op)
{
	if (auto bad = first_toml_defect(text)) {
		char code[16];
		std::snprintf(code, sizeof(code), "U+%04X", static_cast<unsigned>(bad->code_point));
		throw usage_error(op, source + ":" + std::to_string(bad->line) + ":" + std::to_string(bad->column) + ": " +
					      code + " is only allowed in a comment here (the TOML library of this system "
					      "misreads it elsewhere); in a \"string\" write it as \\u" + std::string(code + 2));
	}
	try {
		return toml::parse(text, source);
	} catch (const toml::parse_error &e) {
		const toml::source_region &r = e.source();
		throw usage_error(op, source + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column) +
					      ": " + std::string(e.description()));
	}
}

} // namespace sonic::config
