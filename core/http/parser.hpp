// A strict HTTP/1.1 parser (RFC 9112) over llhttp, for requests and
// responses, parsing in place: the head's strings point into the bytes fed,
// which must stay where they are until the head is complete.
//
// Strict like nginx: Content-Length with Transfer-Encoding, duplicate or
// invalid Content-Length, obs-fold, bare CR or LF, whitespace before a colon
// or before the first header line, control bytes, bad chunk sizes or
// extensions -> 400; a head over the limit -> 431; a Transfer-Encoding other
// than "chunked" -> 501. Responses that break these rules are the upstream's
// fault: 502.
//
// A message is parsed in two phases. head() consumes the head and stops
// right after it; body() then consumes the raw body bytes (the chunked
// framing included) and stops right after the message, so the caller can
// forward exactly the bytes consumed and find the next pipelined message
// after them.
#pragma once

#include "http/message.hpp"

#include <cstddef>
#include <cstdint>
#include <llhttp.h>

namespace sonic::http {

enum class Kind { Request, Response };

// The line structure of a head or of a chunked body's trailer section (RFC
// 9112 sections 2.2 and 5), checked byte by byte before llhttp sees the
// bytes. llhttp 8 takes "\r\n\r" followed by any byte as the end of the
// header block, which lets a request hide headers behind a bare CR; here a CR
// is a line end only with its LF, and every line is checked whole:
// - a CR not followed by LF, or an LF without its CR;
// - a line starting with whitespace (obs-fold, or whitespace before the
//   first header line);
// - whitespace or a control byte in a field name (whitespace before the
//   colon);
// - a control byte other than HTAB in the start line or a field value.
class LineCheck {
public:
	enum class Section { Head, Trailers };
	struct Verdict {
		size_t ok = 0;           // bytes that passed, from the start of the data
		bool end = false;        // the section's empty line ends at OK
		const char *bad = nullptr; // why byte OK is refused, or null
	};
	void start(Section section);
	// Checks the next bytes of the section; stops after its final LF.
	Verdict check(const char *data, size_t len);

private:
	enum class State : uint8_t {
		BeforeStart, // empty lines before the start line are skipped
		EmptyLineCr, // their CR: LF must follow
		StartLine,
		LineStart,   // after a line's LF
		Name,
		Value,
		LineCr,      // a line's CR: LF must follow
		FinalCr,     // the empty line's CR: LF ends the section
		Ended,
	};
	State state_ = State::BeforeStart;
	bool after_start_line_ = false; // the line just ended was the start line
};

class Parser {
public:
	Parser(Kind kind, size_t header_limit);
	Parser(const Parser &) = delete;
	Parser &operator=(const Parser &) = delete;

	enum class Result { More, Done, Error };

	// What one call came to, and how many bytes of its data it used.
	struct Step {
		Result result = Result::More;
		size_t consumed = 0;
	};

	// Head phase: feeds DATA. Done when the head is complete: message()
	// holds it.
	Step head(const char *data, size_t len);
	// Body phase: Done when the message is complete. The bytes consumed are
	// this message's body as it came on the wire. A message without body
	// completes with LEN 0.
	Step body(const char *data, size_t len);
	// The peer closed the connection: completes a body read until close.
	Result finish();

	// Responses: the request was HEAD, so the response has no body whatever
	// its header says. Set before feeding the response.
	void set_no_body(bool no_body) { no_body_ = no_body; }
	// While set, body() also appends the decoded body (chunk framing
	// removed) to PIECES, as views into the bytes fed.
	void set_decode(std::vector<std::string_view> *pieces) { decoded_ = pieces; }
	// A request that asked for an upgrade and did not get one: continue
	// parsing HTTP after it.
	void resume_after_upgrade();

	const Head &message() const { return head_; }
	Head &message() { return head_; }
	bool in_head() const { return in_head_; }
	// Bytes of the current head consumed so far.
	size_t head_bytes() const { return head_bytes_; }

	// The status to answer a failed request with (400, 431, 501) and why.
	int error_status() const { return error_status_; }
	const char *error_reason() const { return error_reason_; }

	// Resets the parser for a new connection.
	void reset();

private:
	friend struct ParserCallbacks;
	llhttp_t parser_;
	Kind kind_;
	size_t header_limit_;
	Head head_;
	bool in_head_ = true;
	bool no_body_ = false;
	std::vector<std::string_view> *decoded_ = nullptr;
	bool in_value_ = false;
	LineCheck lines_;
	// The last chunk was read: the trailer section starts (body phase).
	bool trailers_next_ = false;
	bool in_trailers_ = false;
	size_t head_bytes_ = 0;
	int error_status_ = 0;
	const char *error_reason_ = "";
	// CRLF bytes after a chunk's data still to check, and where they are.
	int crlf_need_ = 0;
	const char *crlf_at_ = nullptr;
	const char *data_end_ = nullptr;

	int fail(int status, const char *reason);
	// 400 for a request, 502 for a response (the upstream's fault).
	int bad_status() const { return kind_ == Kind::Request ? 400 : 502; }
	int headers_complete();
	int check_transfer_encoding();
	bool check_chunk_crlf();

public:
	// Frees what the last message left allocated (an idle connection).
	void trim()
	{
		head_.headers.clear();
		head_.headers.shrink_to_fit();
	}
	Result error_from(llhttp_errno_t err);
};

} // namespace sonic::http
