#include "config/toml_reader.hpp"

#include "config/duration.hpp"

#include <algorithm>
#include <cmath>

namespace sonic::config {

namespace {

std::string quoted(std::string_view key)
{
	return "'" + std::string(key) + "'";
}

} // namespace

std::string TomlReader::at(const toml::node &node) const
{
	const toml::source_region &r = node.source();
	return source_ + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

void TomlReader::fail(const toml::node &node, const std::string &why) const
{
	throw usage_error(op_, at(node) + ": " + why);
}

void TomlReader::fail(const toml::node &node, const Error &e) const
{
	fail(node, e.reason() + (e.object().empty() ? "" : ": " + e.object()));
}

void TomlReader::check_keys(const toml::table &table, std::initializer_list<std::string_view> known,
			    const std::string &section) const
{
	for (const auto &[key, node] : table)
		if (std::find(known.begin(), known.end(), key.str()) == known.end())
			fail(node, "unknown key " + quoted(key.str()) + (section.empty() ? "" : " in " + section));
}

std::optional<std::string> TomlReader::string(const toml::table &t, std::string_view key) const
{
	const toml::node *n = t.get(key);
	if (!n)
		return std::nullopt;
	if (!n->is_string())
		fail(*n, quoted(key) + " must be a string");
	return n->value<std::string>();
}

std::optional<bool> TomlReader::boolean(const toml::table &t, std::string_view key) const
{
	const toml::node *n = t.get(key);
	if (!n)
		return std::nullopt;
	if (!n->is_boolean())
		fail(*n, quoted(key) + " must be true or false");
	return n->value<bool>();
}

std::optional<int64_t> TomlReader::integer(const toml::table &t, std::string_view key, int64_t min,
					   int64_t max) const
{
	const toml::node *n = t.get(key);
	if (!n)
		return std::nullopt;
	if (!n->is_integer())
		fail(*n, quoted(key) + " must be an integer");
	const int64_t v = *n->value<int64_t>();
	if (v < min || v > max)
		fail(*n, quoted(key) + " must be between " + std::to_string(min) + " and " + std::to_string(max));
	return v;
}

std::optional<double> TomlReader::number(const toml::table &t, std::string_view key, double min, double max) const
{
	const toml::node *n = t.get(key);
	if (!n)
		return std::nullopt;
	if (!n->is_integer() && !n->is_floating_point())
		fail(*n, quoted(key) + " must be a number");
	const double v = n->is_integer() ? static_cast<double>(*n->value<int64_t>()) : *n->value<double>();
	if (!(v >= min && v <= max))
		fail(*n, quoted(key) + " must be between " + std::to_string(static_cast<long long>(min)) + " and " +
				 std::to_string(static_cast<long long>(max)));
	return v;
}

std::optional<std::chrono::milliseconds> TomlReader::duration(const toml::table &t, std::string_view key) const
{
	const toml::node *n = t.get(key);
	if (!n)
		return std::nullopt;
	double ms = -1;
	if (n->is_integer()) {
		ms = static_cast<double>(*n->value<int64_t>()) * 1000;
	} else if (n->is_floating_point()) {
		ms = *n->value<double>() * 1000;
	} else if (n->is_string()) {
		auto parsed = parse_duration(*n->value<std::string>());
		if (!parsed)
			fail(*n, quoted(key) + " must be seconds or a duration such as \"250ms\", \"10s\", \"2m\"");
		ms = static_cast<double>(parsed->count());
	} else {
		fail(*n, quoted(key) + " must be a number of seconds or a duration string");
	}
	if (!(ms >= 0) || !std::isfinite(ms) || ms > 1e10)
		fail(*n, quoted(key) + " must be 0 or more");
	return std::chrono::milliseconds(static_cast<long long>(std::llround(ms)));
}

const toml::table *TomlReader::table(const toml::table &t, std::string_view key) const
{
	const toml::node *n = t.get(key);
	if (!n)
		return nullptr;
	if (!n->is_table())
		fail(*n, quoted(key) + " must be a table ([" + std::string(key) + "])");
	return n->as_table();
}

std::vector<const toml::table *> TomlReader::tables(const toml::table &t, std::string_view key) const
{
	std::vector<const toml::table *> out;
	const toml::node *n = t.get(key);
	if (!n)
		return out;
	const toml::array *a = n->as_array();
	if (!a)
		fail(*n, quoted(key) + " must be an array of tables ([[" + std::string(key) + "]])");
	for (const toml::node &e : *a) {
		if (!e.is_table())
			fail(e, "each " + quoted(key) + " must be a table ([[" + std::string(key) + "]])");
		out.push_back(e.as_table());
	}
	return out;
}

} // namespace sonic::config
