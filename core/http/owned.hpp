// Owned, mutable HTTP messages: what filters (scripts) read and edit. They
// are made from a parsed Head only when a route has filters, so the plain
// path keeps its zero-copy views. view() gives a Head whose strings point
// into the owned message, so one serialiser serves both.
#pragma once

#include "http/message.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sonic::http {

// Header fields in order, names as given, compared case-insensitively.
class Fields {
public:
	struct Entry {
		std::string name;
		std::string value;
	};

	const std::vector<Entry> &entries() const { return entries_; }
	// The first value of NAME, or nullopt.
	std::optional<std::string_view> get(std::string_view name) const;
	// Every value of NAME joined with ", " (RFC 9110 5.3), or nullopt.
	std::optional<std::string> get_combined(std::string_view name) const;
	bool has(std::string_view name) const { return get(name).has_value(); }
	// Replaces every NAME with one field.
	void set(std::string_view name, std::string_view value);
	void append(std::string_view name, std::string_view value);
	void remove(std::string_view name);
	void clear() { entries_.clear(); }
	size_t size() const { return entries_.size(); }

private:
	std::vector<Entry> entries_;
};

// A name and value are valid as a field (RFC 9110 5.1, 5.5): a token, and
// no CR, LF or NUL. Scripts' edits are checked with these before sending.
bool valid_field_name(std::string_view name);
bool valid_field_value(std::string_view value);

struct Request {
	std::string method = "GET";
	std::string target = "/"; // as sent: origin-form, absolute-form, ...
	uint8_t minor = 1;
	Fields headers;
	// The body, once read whole (body_read); a streamed body is not here.
	std::string body;
	bool body_read = false;

	// From a parsed request head (the body is not read).
	static Request from(const Head &head);
	// A Head whose views point into this request (valid while it lives and
	// is not edited), with fields classified and framing derived.
	Head view() const;
};

struct Response {
	int status = 200;
	std::string reason; // empty: the standard phrase
	Fields headers;
	std::string body;
	// The body is here (a response a filter made); otherwise it streams
	// from the origin after the head.
	bool body_read = false;

	static Response from(const Head &head);
	// A Head whose views point into this response (as Request::view); the
	// framing is FRAMING's (the origin's, whose body follows as it came).
	Head view(const Head &framing) const;
	// The status line's phrase: reason, or the standard one.
	std::string_view phrase() const;
};

} // namespace sonic::http
