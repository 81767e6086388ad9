#include "http/parser.hpp"

#include <cstring>

namespace sonic::http {

namespace {

// Control bytes (RFC 5234 CTL) other than HTAB: never allowed in a start line
// or a field value.
bool is_bad_control(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7f; }
bool is_ws(char c) { return c == ' ' || c == '\t'; }

// A well-formed token (RFC 9110 section 5.6.2).
bool is_token(std::string_view s)
{
	static const char *const kSpecials = "\"(),/:;<=>?@[\\]{}";
	if (s.empty())
		return false;
	for (unsigned char c : s)
		if (c <= 0x20 || c >= 0x7f || std::strchr(kSpecials, c))
			return false;
	return true;
}

// Extends VIEW with the LEN bytes at AT, which follow it in the buffer (llhttp
// reports a string in pieces when it spans two reads).
void extend(std::string_view &view, const char *at, size_t len)
{
	if (view.data() == nullptr)
		view = std::string_view(at, len);
	else
		view = std::string_view(view.data(), static_cast<size_t>(at + len - view.data()));
}

} // namespace

void LineCheck::start(Section section)
{
	// A trailer section has no start line: it begins as if a field line had
	// just ended.
	state_ = section == Section::Head ? State::BeforeStart : State::LineStart;
	after_start_line_ = false;
}

LineCheck::Verdict LineCheck::check(const char *data, size_t len)
{
	Verdict v;
	auto refuse = [&](size_t at, const char *why) {
		v.ok = at;
		v.bad = why;
		return v;
	};
	for (size_t i = 0; i < len; ++i) {
		const char c = data[i];
		switch (state_) {
		case State::BeforeStart:
			if (c == '\r')
				state_ = State::EmptyLineCr;
			else if (c == '\n')
				return refuse(i, "bare LF (a line must end with CRLF)");
			else if (is_bad_control(static_cast<unsigned char>(c)))
				return refuse(i, "control byte in the start line");
			else
				state_ = State::StartLine;
			break;
		case State::EmptyLineCr:
			if (c != '\n')
				return refuse(i, "bare CR (a CR not followed by LF)");
			state_ = State::BeforeStart;
			break;
		case State::StartLine:
			if (c == '\r') {
				state_ = State::LineCr;
				after_start_line_ = true;
			} else if (c == '\n') {
				return refuse(i, "bare LF (a line must end with CRLF)");
			} else if (is_bad_control(static_cast<unsigned char>(c))) {
				return refuse(i, "control byte in the start line");
			}
			break;
		case State::LineCr:
			if (c != '\n')
				return refuse(i, "bare CR (a CR not followed by LF)");
			state_ = State::LineStart;
			break;
		case State::LineStart:
			if (c == '\r') {
				state_ = State::FinalCr;
			} else if (c == '\n') {
				return refuse(i, "bare LF (a line must end with CRLF)");
			} else if (is_ws(c)) {
				return refuse(i, after_start_line_ ? "whitespace before the first header line"
								   : "obs-fold (a header line starting with whitespace)");
			} else if (c == ':') {
				state_ = State::Value; // llhttp reports the empty name
			} else if (is_bad_control(static_cast<unsigned char>(c))) {
				return refuse(i, "control byte in a header name");
			} else {
				state_ = State::Name;
			}
			after_start_line_ = false;
			break;
		case State::Name:
			if (c == ':')
				state_ = State::Value;
			else if (is_ws(c))
				return refuse(i, "whitespace in a header name or before its colon");
			else if (c == '\r' || c == '\n')
				return refuse(i, "header line without a colon");
			else if (is_bad_control(static_cast<unsigned char>(c)))
				return refuse(i, "control byte in a header name");
			break;
		case State::Value:
			if (c == '\r')
				state_ = State::LineCr;
			else if (c == '\n')
				return refuse(i, "bare LF (a line must end with CRLF)");
			else if (is_bad_control(static_cast<unsigned char>(c)))
				return refuse(i, c == '\0' ? "NUL in a header value" : "control byte in a header value");
			break;
		case State::FinalCr:
			if (c != '\n')
				return refuse(i, "bare CR (a CR not followed by LF)");
			state_ = State::Ended;
			v.ok = i + 1;
			v.end = true;
			return v;
		case State::Ended:
			v.end = true;
			return v;
		}
	}
	v.ok = len;
	v.end = state_ == State::Ended;
	return v;
}

struct ParserCallbacks {
	static Parser &self(llhttp_t *p) { return *static_cast<Parser *>(p->data); }

	static int on_url(llhttp_t *p, const char *at, size_t len)
	{
		extend(self(p).head_.target, at, len);
		return 0;
	}
	static int on_status(llhttp_t *p, const char *at, size_t len)
	{
		extend(self(p).head_.reason, at, len);
		return 0;
	}
	static int on_header_field(llhttp_t *p, const char *at, size_t len)
	{
		Parser &s = self(p);
		if (s.in_value_ || s.head_.headers.empty()) {
			s.head_.headers.emplace_back();
			s.in_value_ = false;
		}
		extend(s.head_.headers.back().name, at, len);
		return 0;
	}
	static int on_header_value(llhttp_t *p, const char *at, size_t len)
	{
		Parser &s = self(p);
		s.in_value_ = true;
		extend(s.head_.headers.back().value, at, len);
		return 0;
	}
	static int on_header_value_complete(llhttp_t *p)
	{
		Parser &s = self(p);
		Header &h = s.head_.headers.back();
		if (h.name.empty())
			return s.fail(s.bad_status(), "empty header name");
		if (!is_token(h.name))
			return s.fail(s.bad_status(), "invalid header name");
		// (Control bytes and obs-fold never get here: LineCheck refused them.)
		h.value = trim_ows(h.value);
		h.field = classify(h.name);
		return 0;
	}
	static int on_headers_complete(llhttp_t *p) { return self(p).headers_complete(); }
	static int on_body(llhttp_t *p, const char *at, size_t len)
	{
		Parser &s = self(p);
		if (s.decoded_)
			s.decoded_->emplace_back(at, len);
		// The end of a chunk's data: CRLF must follow (llhttp 8 skips any
		// two bytes there, which lets a request hide inside another).
		if (s.head_.framing == Framing::Chunked && p->content_length == 0) {
			s.crlf_at_ = at + len;
			s.crlf_need_ = 2;
		}
		return 0;
	}
	static int on_chunk_complete(llhttp_t *p) { return self(p).check_chunk_crlf() ? 0 : -1; }
	// The last chunk's size line was read: pause there, so that body()
	// checks the trailer section's lines before llhttp reads them.
	static int on_chunk_header(llhttp_t *p)
	{
		if (p->content_length != 0)
			return 0;
		self(p).trailers_next_ = true;
		return HPE_PAUSED;
	}
	static int on_message_complete(llhttp_t *) { return HPE_PAUSED; }
	// A header with an empty value produces no value callback.
	static int on_header_field_complete(llhttp_t *p)
	{
		Parser &s = self(p);
		s.in_value_ = true;
		return 0;
	}

	static const llhttp_settings_t &settings()
	{
		static const llhttp_settings_t s = [] {
			llhttp_settings_t st;
			llhttp_settings_init(&st);
			st.on_url = on_url;
			st.on_status = on_status;
			st.on_header_field = on_header_field;
			st.on_header_value = on_header_value;
			st.on_header_field_complete = on_header_field_complete;
			st.on_header_value_complete = on_header_value_complete;
			st.on_headers_complete = on_headers_complete;
			st.on_message_complete = on_message_complete;
			st.on_body = on_body;
			st.on_chunk_header = on_chunk_header;
			st.on_chunk_complete = on_chunk_complete;
			return st;
		}();
		return s;
	}
};

Parser::Parser(Kind kind, size_t header_limit) : kind_(kind), header_limit_(header_limit)
{
	reset();
}

void Parser::reset()
{
	llhttp_init(&parser_, kind_ == Kind::Request ? HTTP_REQUEST : HTTP_RESPONSE, &ParserCallbacks::settings());
	parser_.data = this;
	// Transfer-Encoding is judged in headers_complete(), where the answer can
	// be 501 for an unknown coding rather than llhttp's 400.
	llhttp_set_lenient_transfer_encoding(&parser_, 1);
	head_.clear();
	head_.request = kind_ == Kind::Request;
	in_head_ = true;
	in_value_ = false;
	lines_.start(LineCheck::Section::Head);
	trailers_next_ = false;
	in_trailers_ = false;
	head_bytes_ = 0;
	crlf_need_ = 0;
	error_status_ = 0;
	error_reason_ = "";
}

int Parser::fail(int status, const char *reason)
{
	if (error_status_ == 0) {
		error_status_ = status;
		error_reason_ = reason;
	}
	return -1;
}

int Parser::check_transfer_encoding()
{
	// Every coding listed, over all Transfer-Encoding lines.
	int codings = 0;
	bool chunked_last = false;
	for (const Header &h : head_.headers) {
		if (h.field != Field::TransferEncoding)
			continue;
		std::string_view v = h.value;
		for (;;) {
			size_t comma = v.find(',');
			std::string_view coding = trim_ows(v.substr(0, comma));
			// Parameters (";q=...") are not allowed on a transfer coding
			// sonic knows, so only the name is read.
			if (!is_token(coding))
				return fail(bad_status(), "malformed Transfer-Encoding");
			++codings;
			chunked_last = iequals(coding, "chunked");
			if (comma == std::string_view::npos)
				break;
			v.remove_prefix(comma + 1);
		}
	}
	if (codings == 1 && chunked_last)
		return 0;
	if (kind_ == Kind::Response && chunked_last)
		return 0;
	if (kind_ == Kind::Response)
		return fail(502, "response with a transfer coding sonic cannot decode");
	return fail(501, "unsupported Transfer-Encoding");
}

int Parser::headers_complete()
{
	Head &h = head_;
	h.major = parser_.http_major;
	h.minor = parser_.http_minor;
	if (h.major != 1 || h.minor > 1)
		return fail(kind_ == Kind::Request ? 505 : 502, "unsupported HTTP version");
	bool te = false, cl = false, host = false;
	for (const Header &f : h.headers) {
		switch (f.field) {
		case Field::TransferEncoding:
			te = true;
			break;
		case Field::ContentLength:
			cl = true;
			break;
		case Field::Host:
			if (host)
				return fail(bad_status(), "duplicate Host");
			host = true;
			h.host = f.value;
			break;
		case Field::Expect:
			if (iequals(f.value, "100-continue"))
				h.expect_continue = true;
			else if (kind_ == Kind::Request)
				return fail(417, "unsupported expectation");
			break;
		default:
			break;
		}
	}
	if (te) {
		if (cl)
			return fail(bad_status(), "Content-Length with Transfer-Encoding");
		if (h.minor == 0 && kind_ == Kind::Request)
			return fail(400, "Transfer-Encoding in an HTTP/1.0 request");
		if (check_transfer_encoding() != 0)
			return -1;
	}
	h.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
	if (kind_ == Kind::Request) {
		if (h.minor == 1 && !host)
			return fail(400, "HTTP/1.1 request without Host");
		h.method = parser_.method;
		h.method_name = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
		h.upgrade = parser_.upgrade != 0 && parser_.method != HTTP_CONNECT;
		if (h.target.empty())
			return fail(400, "empty request target");
		// CONNECT has no content (RFC 9110 9.3.6): what follows its head
		// is the tunnel's, whatever a Content-Length says.
		if (parser_.method == HTTP_CONNECT)
			h.framing = Framing::None;
		else if (parser_.flags & F_CHUNKED)
			h.framing = Framing::Chunked;
		else if (parser_.flags & F_CONTENT_LENGTH && parser_.content_length > 0)
			h.framing = Framing::Length;
		else
			h.framing = Framing::None;
	} else {
		h.status = parser_.status_code;
		h.upgrade = h.status == 101;
		if (no_body_) {
			parser_.flags |= F_SKIPBODY;
			h.framing = Framing::None;
		} else if (h.status < 200 || h.status == 204 || h.status == 304) {
			h.framing = Framing::None;
		} else if (parser_.flags & F_CHUNKED) {
			h.framing = Framing::Chunked;
		} else if (parser_.flags & F_CONTENT_LENGTH) {
			h.framing = parser_.content_length > 0 ? Framing::Length : Framing::None;
		} else {
			h.framing = Framing::UntilClose;
			h.keep_alive = false;
		}
	}
	h.content_length = h.framing == Framing::Length ? parser_.content_length : 0;
	return HPE_PAUSED;
}

Parser::Result Parser::error_from(llhttp_errno_t err)
{
	if (error_status_ == 0) {
		// Responses are not answered: any parse error is the upstream's (502).
		int status = kind_ == Kind::Response ? 502 : 400;
		// A well-formed version this parser does not speak, not a malformed
		// request line ("HTTP/1.1 x", "HTTP/1.x").
		const char *why = llhttp_get_error_reason(&parser_);
		if (err == HPE_INVALID_VERSION && kind_ == Kind::Request && why &&
		    std::strcmp(why, "Invalid HTTP version") == 0)
			status = 505;
		fail(status, llhttp_get_error_reason(&parser_) ? llhttp_get_error_reason(&parser_) : llhttp_errno_name(err));
	}
	return Result::Error;
}

Parser::Step Parser::head(const char *data, size_t len)
{
	if (error_status_)
		return {Result::Error, 0};
	if (head_bytes_ == 0) {
		head_.clear();
		if (head_.headers.capacity() == 0)
			head_.headers.reserve(16);
		head_.request = kind_ == Kind::Request;
		in_value_ = false;
		lines_.start(LineCheck::Section::Head);
	}
	const LineCheck::Verdict lines = lines_.check(data, len);
	if (head_bytes_ + lines.ok > header_limit_) {
		fail(kind_ == Kind::Request ? 431 : 502, "header block over the limit");
		return {Result::Error, 0};
	}
	// llhttp reads only bytes whose lines passed: never a bad one, and never
	// past the head's empty line. Given those before a bad byte, it may find
	// an earlier fault, which is then the one reported: the verdict and its
	// reason do not depend on how the bytes were split across reads.
	llhttp_errno_t err = llhttp_execute(&parser_, data, lines.ok);
	if (err == HPE_OK && lines.bad) {
		fail(bad_status(), lines.bad);
		return {Result::Error, 0};
	}
	if (err == HPE_OK) {
		head_bytes_ += lines.ok;
		if (lines.end) { // both must agree where the head ends
			fail(bad_status(), "malformed head");
			return {Result::Error, lines.ok};
		}
		return {Result::More, lines.ok};
	}
	const char *pos = llhttp_get_error_pos(&parser_);
	const size_t consumed = pos ? static_cast<size_t>(pos - data) : 0;
	head_bytes_ += consumed;
	if (err != HPE_PAUSED)
		return {error_from(err), consumed};
	llhttp_resume(&parser_);
	in_head_ = false;
	return {Result::Done, consumed};
}

bool Parser::check_chunk_crlf()
{
	static const char kCrlf[] = "\r\n";
	while (crlf_need_ > 0 && crlf_at_ < data_end_) {
		if (*crlf_at_ != kCrlf[2 - crlf_need_]) {
			fail(bad_status(), "chunk data not followed by CRLF");
			return false;
		}
		++crlf_at_;
		--crlf_need_;
	}
	return true;
}

Parser::Step Parser::body(const char *data, size_t len)
{
	size_t consumed = 0;
	if (error_status_)
		return {Result::Error, 0};
	// One pass, or two when the last chunk ends in this data: its size line,
	// then the trailer section, whose lines are checked as a head's are.
	for (;;) {
		const char *at = data + consumed;
		size_t feed = len - consumed;
		const char *bad_line = nullptr;
		if (in_trailers_) {
			const LineCheck::Verdict lines = lines_.check(at, feed);
			feed = lines.ok;
			bad_line = lines.bad; // after the bytes before it, as in head()
		}
		// A CRLF split across reads continues at the start of this one.
		if (crlf_need_ > 0)
			crlf_at_ = at;
		data_end_ = at + feed;
		llhttp_errno_t err = llhttp_execute(&parser_, at, feed);
		if (err == HPE_OK) {
			consumed += feed;
			if (!check_chunk_crlf())
				return {Result::Error, consumed};
			if (bad_line) {
				fail(bad_status(), bad_line);
				return {Result::Error, consumed};
			}
			return {Result::More, consumed};
		}
		if (error_status_)
			return {Result::Error, consumed};
		const char *pos = llhttp_get_error_pos(&parser_);
		consumed += pos ? static_cast<size_t>(pos - at) : 0;
		if (err != HPE_PAUSED)
			return {error_from(err), consumed};
		llhttp_resume(&parser_);
		if (!trailers_next_)
			break;
		trailers_next_ = false;
		in_trailers_ = true;
		lines_.start(LineCheck::Section::Trailers);
	}
	in_trailers_ = false;
	in_head_ = true;
	head_bytes_ = 0;
	no_body_ = false;
	return {Result::Done, consumed};
}

Parser::Result Parser::finish()
{
	llhttp_errno_t err = llhttp_finish(&parser_);
	if (err == HPE_OK || err == HPE_PAUSED)
		return Result::Done;
	return error_from(err);
}

void Parser::resume_after_upgrade() { llhttp_resume_after_upgrade(&parser_); }

} // namespace sonic::http
