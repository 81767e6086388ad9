#include "http/serialize.hpp"

#include <charconv>

namespace sonic::http {

std::string_view status_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

void append_request_line(std::string &out, std::string_view method, std::string_view target)
{
	out.append(method);
	out.push_back(' ');
	// The empty path of "http://host?q" is sent as "/" (RFC 9112 3.2.1).
	if (!target.empty() && target[0] == '?')
		out.push_back('/');
	out.append(target);
	out.append(" HTTP/1.1\r\n", 11);
}

void append_status_line(std::string &out, int status, std::string_view reason)
{
	char code[4] = {static_cast<char>('0' + status / 100 % 10), static_cast<char>('0' + status / 10 % 10),
			static_cast<char>('0' + status % 10), ' '};
	out.append("HTTP/1.1 ", 9);
	out.append(code, 4);
	out.append(reason);
	out.append("\r\n", 2);
}

void append_header(std::string &out, std::string_view name, std::string_view value)
{
	out.append(name);
	out.append(": ", 2);
	out.append(value);
	out.append("\r\n", 2);
}

void append_header(std::string &out, std::string_view name, uint64_t value)
{
	char buf[24];
	auto r = std::to_chars(buf, buf + sizeof(buf), value);
	append_header(out, name, std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
}

void append_end_to_end_headers(std::string &out, const Head &head, Field skip)
{
	bool any_connection = head.find(Field::Connection) != nullptr;
	for (const Header &h : head.headers) {
		if (h.field == skip && skip != Field::Other)
			continue;
		if (h.field != Field::Other ? is_hop_by_hop(head, h) : any_connection && head.connection_lists(h.name))
			continue;
		append_header(out, h.name, h.value);
	}
}

void append_simple_response(std::string &out, int status, std::string_view content_type, std::string_view body,
			    bool keep_alive, std::string_view extra)
{
	append_status_line(out, status, status_reason(status));
	append_header(out, "Server", std::string_view("sonic"));
	if (!content_type.empty())
		append_header(out, "Content-Type", content_type);
	append_header(out, "Content-Length", static_cast<uint64_t>(body.size()));
	if (!keep_alive)
		append_header(out, "Connection", std::string_view("close"));
	out.append(extra);
	end_head(out);
	out.append(body);
}

std::string_view ChunkedEncoder::prefix(size_t n)
{
	auto r = std::to_chars(buf_, buf_ + sizeof(buf_) - 2, static_cast<unsigned long long>(n), 16);
	r.ptr[0] = '\r';
	r.ptr[1] = '\n';
	return std::string_view(buf_, static_cast<size_t>(r.ptr + 2 - buf_));
}

} // namespace sonic::http
