// One output model, two renderers. Every command builds a Value (JSON-shaped,
// keys in insertion order, snake_case); the same Value is printed as text for
// people or as JSON for scripts, so the two cannot drift apart.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

namespace sonic::out {

using Value = nlohmann::ordered_json;

enum class Format { Text, Json, JsonPretty };

// Text layout rules:
//  - an object prints one "label: value" line per scalar member, labels
//    aligned, snake_case shown with spaces;
//  - a member holding an object prints "label:" and the object indented;
//  - a member holding an array of objects prints a table, one row each,
//    columns in first-seen key order, headers upper case;
//  - arrays of scalars are joined with ", "; null prints as "-".
std::string render_text(const Value &value);
std::string render_json(const Value &value, bool pretty);

void render(const Value &value, Format format, std::ostream &os);

// The text of a scalar cell, as the text renderer prints it.
std::string scalar_text(const Value &value);

// Unix seconds as 2026-01-31T12:00:00Z, the one way times are printed.
std::string iso_time(int64_t unix_seconds);

} // namespace sonic::out
