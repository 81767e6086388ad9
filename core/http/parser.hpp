// A strict HTTP/1.1 parser (RFC 9112) over llhttp, for requests and
// responses, parsing in place: the head's strings point into the bytes fed,
// which must stay where they are until the head is complete.
//
// Strict like nginx: Content-Length with Transfer-Encoding, duplicate or
// invalid Content-Length, obs-fold, bare LF, control bytes, bad chunk sizes
// or extensions -> 400; a head over the limit -> 431; a Transfer-Encoding
// other than "chunked" -> 501.
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

class Parser {
public:
	Parser(Kind kind, size_t header_limit);
	Parser(const Parser &) = delete;
	Parser &operator=(const Parser &) = delete;

	enum class Result { More, Done, Error };

	// Head phase: feeds DATA; CONSUMED tells how many bytes were used. Done
	// when the head is complete: message() holds it.
	Result head(const char *data, size_t len, size_t &consumed);
	// Body phase: Done when the message is complete. The bytes consumed are
	// this message's body as it came on the wire. A message without body
	// completes with LEN 0.
	Result body(const char *data, size_t len, size_t &consumed);
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
	size_t head_bytes_ = 0;
	int error_status_ = 0;
	const char *error_reason_ = "";
	// CRLF bytes after a chunk's data still to check, and where they are.
	int crlf_need_ = 0;
	const char *crlf_at_ = nullptr;
	const char *data_end_ = nullptr;

	int fail(int status, const char *reason);
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
