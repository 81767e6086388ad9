#include "out/render.hpp"

#include <algorithm>
#include <ctime>
#include <sstream>
#include <vector>

namespace sonic::out {

namespace {

bool is_scalar_like(const Value &v)
{
	if (v.is_array())
		return std::all_of(v.begin(), v.end(), [](const Value &e) { return e.is_primitive(); });
	return v.is_primitive();
}

std::string label(const std::string &key)
{
	std::string s = key;
	std::replace(s.begin(), s.end(), '_', ' ');
	return s;
}

std::string upper(const std::string &key)
{
	std::string s = key;
	std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
	return s;
}

void render_table(const Value &rows, int indent, std::ostream &os);

void render_object(const Value &obj, int indent, std::ostream &os)
{
	size_t width = 0;
	for (auto it = obj.begin(); it != obj.end(); ++it)
		if (is_scalar_like(it.value()))
			width = std::max(width, it.key().size());

	const std::string pad(static_cast<size_t>(indent), ' ');
	for (auto it = obj.begin(); it != obj.end(); ++it) {
		const Value &v = it.value();
		const std::string name = label(it.key());
		if (is_scalar_like(v)) {
			os << pad << name << ':' << std::string(width - name.size() + 1, ' ')
			   << scalar_text(v) << '\n';
		} else if (v.is_object()) {
			os << pad << name << ":\n";
			render_object(v, indent + 2, os);
		} else {
			os << pad << name << ":\n";
			render_table(v, indent + 2, os);
		}
	}
}

void render_table(const Value &rows, int indent, std::ostream &os)
{
	std::vector<std::string> columns;
	for (const Value &row : rows) {
		if (!row.is_object())
			continue;
		for (auto it = row.begin(); it != row.end(); ++it)
			if (std::find(columns.begin(), columns.end(), it.key()) == columns.end())
				columns.push_back(it.key());
	}
	std::vector<std::vector<std::string>> cells;
	cells.emplace_back();
	for (const std::string &c : columns)
		cells.back().push_back(upper(c));
	for (const Value &row : rows) {
		cells.emplace_back();
		for (const std::string &c : columns)
			cells.back().push_back(row.is_object() && row.contains(c) ? scalar_text(row.at(c)) : "-");
	}
	std::vector<size_t> widths(columns.size(), 0);
	for (const auto &line : cells)
		for (size_t i = 0; i < line.size(); ++i)
			widths[i] = std::max(widths[i], line[i].size());

	const std::string pad(static_cast<size_t>(indent), ' ');
	for (const auto &line : cells) {
		std::string text = pad;
		for (size_t i = 0; i < line.size(); ++i) {
			text += line[i];
			if (i + 1 < line.size())
				text += std::string(widths[i] - line[i].size() + 2, ' ');
		}
		while (!text.empty() && text.back() == ' ')
			text.pop_back();
		os << text << '\n';
	}
}

} // namespace

std::string scalar_text(const Value &v)
{
	if (v.is_null())
		return "-";
	if (v.is_string())
		return v.get<std::string>();
	if (v.is_boolean())
		return v.get<bool>() ? "yes" : "no";
	if (v.is_array()) {
		if (v.empty())
			return "-";
		std::string s;
		for (const Value &e : v) {
			if (!s.empty())
				s += ", ";
			s += scalar_text(e);
		}
		return s;
	}
	if (v.is_object())
		return v.dump();
	return v.dump();
}

std::string render_text(const Value &value)
{
	std::ostringstream os;
	if (value.is_object())
		render_object(value, 0, os);
	else if (value.is_array() && !is_scalar_like(value))
		render_table(value, 0, os);
	else
		os << scalar_text(value) << '\n';
	return os.str();
}

std::string render_json(const Value &value, bool pretty)
{
	return value.dump(pretty ? 2 : -1) + "\n";
}

void render(const Value &value, Format format, std::ostream &os)
{
	if (format == Format::Text)
		os << render_text(value);
	else
		os << render_json(value, format == Format::JsonPretty);
	os.flush();
}

std::string iso_time(int64_t unix_seconds)
{
	std::time_t t = static_cast<std::time_t>(unix_seconds);
	std::tm tm{};
	gmtime_r(&t, &tm);
	char buf[32];
	std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

} // namespace sonic::out
