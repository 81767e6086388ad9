// The strict HTTP/1.1 parser: well-formed messages, pipelining, bodies
// consumed raw, and the request-smuggling shapes with the status each gets.
#include "http/parser.hpp"
#include "http/serialize.hpp"

#include <catch2/catch.hpp>
#include <string>

using sonic::http::Framing;
using sonic::http::Kind;
using sonic::http::Parser;

namespace {

struct Parsed {
	Parser::Result result;
	int status = 0;
	size_t head_len = 0;
	size_t body_len = 0;
	Framing framing = Framing::None;
};

// Parses one request from TEXT, fed all at once or byte by byte.
Parsed parse(const std::string &text, bool bytewise = false, size_t limit = 16384)
{
	Parser p(Kind::Request, limit);
	Parsed out;
	size_t at = 0;
	for (;;) {
		size_t len = bytewise ? std::min<size_t>(1, text.size() - at) : text.size() - at;
		const Parser::Step step = p.head(text.data() + at, len);
		out.result = step.result;
		at += step.consumed;
		if (out.result != Parser::Result::More || at == text.size())
			break;
	}
	out.head_len = at;
	if (out.result == Parser::Result::Done) {
		out.framing = p.message().framing;
		for (;;) {
			size_t len = bytewise ? std::min<size_t>(1, text.size() - at) : text.size() - at;
			const Parser::Step step = p.body(text.data() + at, len);
			out.result = step.result;
			at += step.consumed;
			out.body_len += step.consumed;
			if (out.result != Parser::Result::More || at == text.size())
				break;
		}
	}
	out.status = p.error_status();
	return out;
}

int status_of(const std::string &text)
{
	Parsed a = parse(text), b = parse(text, true);
	INFO(text);
	CHECK(a.status == b.status); // the same verdict however the bytes arrive
	if (a.result == Parser::Result::Error)
		return a.status;
	return a.result == Parser::Result::Done ? 200 : 0; // 0: waits for more
}

} // namespace

TEST_CASE("a request head is parsed in place", "[http]")
{
	std::string text = "GET /a?b=c HTTP/1.1\r\nHost: Example.com\r\nX-Empty:\r\nAccept:  */*  \r\n\r\n";
	Parser p(Kind::Request, 16384);
	const auto [head_result, used] = p.head(text.data(), text.size());
	REQUIRE(head_result == Parser::Result::Done);
	CHECK(used == text.size());
	const auto &h = p.message();
	CHECK(h.method_name == "GET");
	CHECK(h.target == "/a?b=c");
	CHECK(h.host == "Example.com");
	REQUIRE(h.headers.size() == 3);
	CHECK(h.headers[1].name == "X-Empty");
	CHECK(h.headers[1].value.empty());
	CHECK(h.headers[2].value == "*/*");
	CHECK(h.keep_alive);
	CHECK(h.framing == Framing::None);
	CHECK(p.body(text.data() + used, 0).result == Parser::Result::Done);
}

TEST_CASE("pipelined requests are split at their boundaries", "[http]")
{
	std::string a = "POST /1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
	std::string b = "POST /2 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n";
	std::string c = "GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
	std::string all = a + b + c;
	Parser p(Kind::Request, 16384);
	size_t at = 0;
	std::vector<std::string> targets;
	std::vector<size_t> ends;
	while (at < all.size()) {
		const Parser::Step head = p.head(all.data() + at, all.size() - at);
		REQUIRE(head.result == Parser::Result::Done);
		targets.emplace_back(p.message().target);
		bool keep = p.message().keep_alive;
		at += head.consumed;
		const Parser::Step body = p.body(all.data() + at, all.size() - at);
		REQUIRE(body.result == Parser::Result::Done);
		at += body.consumed;
		ends.push_back(at);
		if (!keep)
			break;
	}
	CHECK(targets == std::vector<std::string>{"/1", "/2", "/3"});
	CHECK(ends == std::vector<size_t>{a.size(), a.size() + b.size(), all.size()});
}

TEST_CASE("request smuggling shapes are refused", "[http][smuggling]")
{
	const std::string h = "POST / HTTP/1.1\r\nHost: a\r\n";
	struct Case {
		const char *name;
		std::string text;
		int status;
	};
	const Case cases[] = {
		{"CL.TE", h + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX", 400},
		{"TE.CL", h + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400},
		{"duplicate CL, same value", h + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400},
		{"duplicate CL, other value", h + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"CL list", h + "Content-Length: 3, 3\r\n\r\nabc", 400},
		{"CL with sign", h + "Content-Length: +3\r\n\r\nabc", 400},
		{"CL negative", h + "Content-Length: -1\r\n\r\n", 400},
		{"CL overflow", h + "Content-Length: 99999999999999999999999\r\n\r\n", 400},
		{"TE xchunked", h + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501},
		{"TE chunked, identity", h + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 501},
		{"TE identity, chunked", h + "Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n", 501},
		{"TE gzip, chunked", h + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
		{"TE twice", h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
		{"TE empty element", h + "Transfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE space before colon", h + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE tab before colon", h + "Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE vertical tab", h + "Transfer-Encoding:\x0b" "chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE folded onto a header", h + "X: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400},
		{"bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n", 400},
		{"bare LF in a header", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400},
		{"bare CR", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400},
		{"NUL in a value", std::string("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 33), 400},
		{"control byte in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n", 400},
		{"empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 400},
		{"space in the target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"HTTP/0.9", "GET /\r\n\r\n", 505},
		{"HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
		{"bad chunk size", h + "Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400},
		{"chunk size overflow", h + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nabc\r\n0\r\n\r\n", 400},
		{"chunk size with space", h + "Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", 400},
		{"chunk size 0x prefix", h + "Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400},
		{"chunk size bare LF", h + "Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400},
		{"chunk data too long", h + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", 400},
		{"chunk data without CRLF", h + "Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400},
		{"chunk data then bare LF", h + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", 400},
		{"space in a header name", "GET / HTTP/1.1\r\nHost: a\r\nX A: a\r\n\r\n", 400},
		{"extra token after the version", "GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", 400},
		{"chunk extension control byte", h + "Transfer-Encoding: chunked\r\n\r\n3;\x01\r\nabc\r\n0\r\n\r\n", 400},
		{"chunk extension bare LF", h + "Transfer-Encoding: chunked\r\n\r\n3;a\nabc\r\n0\r\n\r\n", 400},
		{"unsupported Expect", h + "Expect: 200-ok\r\nContent-Length: 0\r\n\r\n", 417},
	};
	for (const Case &c : cases) {
		INFO(c.name);
		CHECK(status_of(c.text) == c.status);
	}
}

// The head's line structure (RFC 9112 2.2, 5.1, 5.2), one class per row,
// in requests (400) and in responses from an upstream (502). The first three
// rows are the vectors of issue 17: llhttp 8 ended the header block at
// "\r\n\r", so the body headers after the bare CR reached nobody and the rest
// was parsed as a second request.
TEST_CASE("bare CR, obs-fold, control bytes and misplaced whitespace in a head", "[http][smuggling]")
{
	struct Case {
		const char *name;
		std::string request; // the field lines, after "POST / HTTP/1.1\r\nHost: a\r\n"
	};
	const Case cases[] = {
		{"bare CR before TE and CL (issue 17)", "\rTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"},
		{"bare CR before CL (issue 17)", "\rContent-Length: 5\r\n\r\nhello"},
		{"bare CR before TE (issue 17)", "\rTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{"two CRs as the empty line", "X: a\r\n\r\r"},
		{"bare CR then CRLF as the empty line", "X: a\r\n\r\r\n"},
		{"bare CR inside a value", "X: a\rb\r\n\r\n"},
		{"bare CR at the end of a value", "X: a\r\r\n\r\n"},
		{"bare CR inside a name", "X\rY: a\r\n\r\n"},
		{"bare LF ending a field line", "X: a\nY: b\r\n\r\n"},
		{"bare LF as the empty line", "X: a\r\n\n"},
		{"NUL in a value", std::string("X: a\0b\r\n\r\n", 10)},
		{"NUL at the start of a value", std::string("X: \0\r\n\r\n", 8)},
		{"SOH in a value", "X: a\x01" "b\r\n\r\n"},
		{"vertical tab in a value", "X: a\x0b" "b\r\n\r\n"},
		{"form feed in a value", "X: a\x0c" "b\r\n\r\n"},
		{"escape in a value", "X: a\x1b" "b\r\n\r\n"},
		{"DEL in a value", "X: a\x7f" "b\r\n\r\n"},
		{"control byte in a name", "X\x01Y: a\r\n\r\n"},
		{"obs-fold with a space", "X: a\r\n b\r\n\r\n"},
		{"obs-fold with a tab", "X: a\r\n\tb\r\n\r\n"},
		{"obs-fold hiding TE", "X: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"space before the colon", "Content-Length : 5\r\n\r\nhello"},
		{"tab before the colon", "Content-Length\t: 5\r\n\r\nhello"},
		{"space inside a name", "Content Length: 5\r\n\r\nhello"},
		{"a line without a colon", "Content-Length 5\r\n\r\nhello"},
	};
	for (const Case &c : cases) {
		INFO(c.name);
		CHECK(status_of("POST / HTTP/1.1\r\nHost: a\r\n" + c.request) == 400);
		Parser p(Kind::Response, 16384);
		std::string response = "HTTP/1.1 200 OK\r\nServer: o\r\n" + c.request;
		const auto [head_result, used] = p.head(response.data(), response.size());
		CHECK(head_result == Parser::Result::Error);
		CHECK(p.error_status() == 502);
	}
	// Whitespace between the start line and the first header line (RFC 9112
	// 2.2), and bytes that never belong in a start line.
	const std::string starts[] = {
		"POST / HTTP/1.1\r\n Host: a\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\n\tHost: a\r\n\r\n",
		"POST /\r HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\r\nHost: a\r\n\r\n",
		"POST /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
		"\r\rPOST / HTTP/1.1\r\nHost: a\r\n\r\n",
		"\nPOST / HTTP/1.1\r\nHost: a\r\n\r\n",
	};
	for (const std::string &s : starts) {
		INFO(s);
		CHECK(status_of(s) == 400);
	}
	Parser p(Kind::Response, 16384);
	std::string folded_status = "HTTP/1.1 200 OK\r\n Server: o\r\n\r\n";
	const auto [head_result, used] = p.head(folded_status.data(), folded_status.size());
	CHECK(head_result == Parser::Result::Error);
	CHECK(p.error_status() == 502);
	// An empty line before the request line is skipped (RFC 9112 2.2), and
	// HTAB and obs-text are fine in a value.
	CHECK(status_of("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n") == 200);
	CHECK(status_of("GET / HTTP/1.1\r\nHost: a\r\nX: a\tb \xff\r\n\r\n") == 200);
}

// A chunked body's trailer section is a header block too: a bare CR or an
// obs-fold there must not let bytes after it be read as something else.
TEST_CASE("the trailer section's lines are checked like a head's", "[http][smuggling]")
{
	const std::string h = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n";
	CHECK(status_of(h + "\r\n") == 200);
	CHECK(status_of(h + "T: v\r\nU: w\r\n\r\n") == 200);
	CHECK(status_of(h + "\rGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n") == 400);
	CHECK(status_of(h + "T: v\r\n\rX") == 400);
	CHECK(status_of(h + "T: v\r\n folded\r\n\r\n") == 400);
	CHECK(status_of(h + "T : v\r\n\r\n") == 400);
	CHECK(status_of(h + std::string("T: a\0b\r\n\r\n", 10)) == 400);
	CHECK(status_of(h + "T: v\n\r\n") == 400);
	Parsed p = parse(h + "T: v\r\n\r\nGET /next HTTP/1.1\r\n");
	CHECK(p.result == Parser::Result::Done);
	CHECK(p.body_len == std::string("5\r\nhello\r\n0\r\nT: v\r\n\r\n").size());
}

TEST_CASE("well-formed messages the strict rules must not refuse", "[http][smuggling]")
{
	const std::string h = "POST / HTTP/1.1\r\nHost: a\r\n";
	CHECK(status_of(h + "Transfer-Encoding:  chunked \r\n\r\n0\r\n\r\n") == 200);
	CHECK(status_of(h + "Transfer-Encoding:\tChunked\r\n\r\n0\r\n\r\n") == 200);
	CHECK(status_of(h + "Transfer-Encoding: chunked\r\n\r\n3;name=\"v\"\r\nabc\r\n0\r\n\r\n") == 200);
	CHECK(status_of(h + "Content-Length: 0\r\n\r\n") == 200);
	CHECK(status_of("GET / HTTP/1.0\r\n\r\n") == 200);
	CHECK(status_of("GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n") == 200);
	Parsed p = parse(h + "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
	CHECK(p.framing == Framing::Chunked);
	CHECK(p.body_len == 13); // raw bytes, framing included
}

// Found by tests/fuzz: a CONNECT head claimed a body its tunnel then read.
TEST_CASE("CONNECT has no body, whatever Content-Length says", "[http]")
{
	std::string text = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nContent-Length: 4\r\n\r\nabcd";
	Parser p(Kind::Request, 16384);
	const auto [head_result, used] = p.head(text.data(), text.size());
	REQUIRE(head_result == Parser::Result::Done);
	CHECK(p.message().is_connect());
	CHECK(p.message().framing == Framing::None);
	CHECK(p.message().content_length == 0);
	CHECK(text.substr(used) == "abcd"); // the tunnel's first bytes
}

TEST_CASE("a head over the limit is 431", "[http]")
{
	std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(20000, 'a') + "\r\n\r\n";
	CHECK(parse(big).status == 431);
	CHECK(parse(big, true).status == 431);
	std::string fits = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(1000, 'a') + "\r\n\r\n";
	CHECK(parse(fits, false, 2048).result == Parser::Result::Done);
	CHECK(parse(fits, false, 1024).status == 431);
}

TEST_CASE("responses: framing, HEAD, interim and until-close", "[http]")
{
	auto response = [](const std::string &text, bool head = false) {
		Parser p(Kind::Response, 16384);
		p.set_no_body(head);
		const auto [head_result, used] = p.head(text.data(), text.size());
		REQUIRE(head_result == Parser::Result::Done);
		return std::make_pair(p.message().framing, p.message().status);
	};
	CHECK(response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").first == Framing::Length);
	CHECK(response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).first == Framing::None);
	CHECK(response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").first == Framing::Chunked);
	CHECK(response("HTTP/1.1 200 OK\r\n\r\nuntil close").first == Framing::UntilClose);
	CHECK(response("HTTP/1.1 204 No Content\r\n\r\n").first == Framing::None);
	CHECK(response("HTTP/1.1 100 Continue\r\n\r\n").second == 100);

	Parser p(Kind::Response, 16384);
	std::string bad = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
	const auto [head_result, used] = p.head(bad.data(), bad.size());
	CHECK(head_result == Parser::Result::Error);
	CHECK(p.error_status() == 502);
}

TEST_CASE("decoded bodies drop the chunk framing", "[http]")
{
	std::string text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
	Parser p(Kind::Response, 16384);
	const auto [head_result, used] = p.head(text.data(), text.size());
	REQUIRE(head_result == Parser::Result::Done);
	std::vector<std::string_view> pieces;
	p.set_decode(&pieces);
	const auto [body_result, body] = p.body(text.data() + used, text.size() - used);
	REQUIRE(body_result == Parser::Result::Done);
	std::string joined;
	for (auto piece : pieces)
		joined += piece;
	CHECK(joined == "hello world");
	CHECK(used + body == text.size());
}

TEST_CASE("the serializer writes heads and chunks", "[http]")
{
	std::string out;
	sonic::http::append_status_line(out, 502, sonic::http::status_reason(502));
	sonic::http::append_header(out, "Content-Length", uint64_t{12});
	sonic::http::end_head(out);
	CHECK(out == "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 12\r\n\r\n");
	sonic::http::ChunkedEncoder c;
	CHECK(c.prefix(255) == "ff\r\n");
	CHECK(c.prefix(1) == "1\r\n");

	std::string req = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
			  "Keep-Alive: 5\r\nTE: trailers\r\nAccept: */*\r\n\r\n";
	Parser p(Kind::Request, 16384);
	const auto [head_result, used] = p.head(req.data(), req.size());
	REQUIRE(head_result == Parser::Result::Done);
	out.clear();
	sonic::http::append_end_to_end_headers(out, p.message());
	CHECK(out == "Host: a\r\nAccept: */*\r\n");
}
