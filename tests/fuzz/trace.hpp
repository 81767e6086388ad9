// What the strict parser makes of a byte stream, as the proxy feeds it: the
// messages it finds (where each head and body ends, the head's facts) and
// how the stream ends (an error status, or waiting for more). The fuzz
// targets parse each input whole and again in small pieces, and the two
// traces must be the same: a verdict may never depend on how the bytes were
// split across reads.
#pragma once

#include "http/parser.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace fuzz {

using sonic::http::Framing;
using sonic::http::Head;
using sonic::http::Kind;
using sonic::http::Parser;

inline void require(bool ok, const char *what)
{
	if (!ok) {
		std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
		std::abort();
	}
}

// A view must lie inside the bytes fed.
inline void inside(std::string_view v, const char *begin, const char *end, const char *what)
{
	if (v.data() == nullptr || v.empty())
		return;
	require(v.data() >= begin && v.data() + v.size() <= end, what);
}

// One message's facts, as text, so two traces compare with ==.
inline std::string facts(const Head &h)
{
	std::string s;
	s += h.request ? std::string(h.method_name) + " " + std::string(h.target) : std::to_string(h.status);
	s += " " + std::to_string(h.major) + "." + std::to_string(h.minor);
	s += " framing=" + std::to_string(static_cast<int>(h.framing)) + " cl=" + std::to_string(h.content_length);
	s += h.keep_alive ? " keep" : " close";
	s += h.upgrade ? " upgrade" : "";
	s += h.expect_continue ? " continue" : "";
	for (const auto &f : h.headers)
		s += "|" + std::string(f.name) + ":" + std::string(f.value);
	return s;
}

struct Trace {
	std::vector<std::string> events;
	bool operator==(const Trace &) const = default;
};

// Parses DATA as the proxy would, STEP bytes arriving at a time (0: all at
// once), decoding chunked bodies as for an HTTP/1.0 client. Responses:
// NO_BODY answers a HEAD request; interim responses are followed by the
// final one, as relay_response() reads them.
inline Trace trace(Kind kind, const std::string &data, size_t step, bool no_body)
{
	Parser p(kind, 4096);
	Trace t;
	const char *const b = data.data();
	const size_t n = data.size();
	size_t avail = step ? std::min(step, n) : n;
	size_t at = 0;
	auto more = [&] {
		if (avail == n)
			return false;
		avail = std::min(n, avail + step);
		return true;
	};
	auto end = [&](const char *why) { t.events.push_back(std::string(why) + " at " + std::to_string(at)); };
	auto error = [&] {
		const int s = p.error_status();
		if (kind == Kind::Request)
			require(s == 400 || s == 413 || s == 417 || s == 431 || s == 501 || s == 505, "request error status");
		else
			require(s == 502, "response error status");
		require(p.error_reason() && *p.error_reason(), "an error has a reason");
		t.events.push_back("error " + std::to_string(s) + " " + p.error_reason());
	};
	for (int messages = 0; messages < 32; ++messages) {
		p.set_no_body(no_body);
		for (;;) {
			const auto [r, used] = p.head(b + at, avail - at);
			require(used <= avail - at, "head consumed more than it was given");
			at += used;
			if (r == Parser::Result::Done)
				break;
			if (r == Parser::Result::Error) {
				error();
				return t;
			}
			if (!more()) {
				end("head waits");
				return t;
			}
		}
		const Head &h = p.message();
		inside(h.target, b, b + at, "target outside the head");
		for (const auto &f : h.headers) {
			inside(f.name, b, b + at, "field name outside the head");
			inside(f.value, b, b + at, "field value outside the head");
			require(!f.name.empty(), "empty field name accepted");
			for (char c : f.value)
				require(c != '\r' && c != '\n' && c != '\0', "CR, LF or NUL in a field value");
		}
		require(h.framing != Framing::Length || h.content_length > 0, "Length framing without a length");
		require(kind == Kind::Response || h.framing != Framing::UntilClose, "a request read until close");
		t.events.push_back("head " + std::to_string(at) + " " + facts(h));
		if ((kind == Kind::Response && h.status == 101) || (kind == Kind::Request && h.is_connect())) {
			require(h.framing == Framing::None, "a tunnel's head with a body");
			return t; // a tunnel from here on
		}
		std::vector<std::string_view> pieces;
		p.set_decode(h.framing == Framing::Chunked ? &pieces : nullptr);
		size_t body = 0, decoded = 0;
		for (;;) {
			pieces.clear();
			auto [r, used] = p.body(b + at, avail - at);
			require(used <= avail - at, "body consumed more than it was given");
			if (r == Parser::Result::Error) { // the pieces are dropped with the message
				error();
				return t;
			}
			for (std::string_view piece : pieces) {
				inside(piece, b + at, b + at + used, "decoded piece outside the bytes consumed");
				decoded += piece.size();
			}
			at += used;
			body += used;
			if (r == Parser::Result::Done)
				break;
			if (!more()) {
				if (h.framing == Framing::UntilClose) {
					r = p.finish();
					require(r != Parser::Result::More, "finish() left the body open");
					if (r == Parser::Result::Error) {
						error();
						return t;
					}
					break;
				}
				end("body waits");
				return t;
			}
		}
		p.set_decode(nullptr);
		require(decoded <= body, "decoded more bytes than the body had");
		require(h.framing != Framing::Length || body == h.content_length, "a Length body of another length");
		t.events.push_back("body " + std::to_string(body) + " decoded " + std::to_string(decoded));
		const bool interim = kind == Kind::Response && h.status >= 100 && h.status < 200;
		if (!interim && !h.keep_alive)
			return t;
		if (kind == Kind::Request && h.upgrade)
			p.resume_after_upgrade();
		if (at == n) {
			end("stream ends");
			return t;
		}
	}
	end("message limit");
	return t;
}

// The same verdict whole, byte by byte, and in pieces of 13 bytes.
inline void check_splits(Kind kind, const uint8_t *data, size_t size, bool no_body)
{
	const std::string bytes(reinterpret_cast<const char *>(data), size);
	const Trace whole = trace(kind, bytes, 0, no_body);
	require(trace(kind, bytes, 1, no_body) == whole, "byte-by-byte parse differs from the whole parse");
	require(trace(kind, bytes, 13, no_body) == whole, "13-byte pieces parse differently");
}

} // namespace fuzz
