#include "http/message.hpp"

#include <llhttp.h>

namespace sonic::http {

namespace {

inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

struct Known {
	std::string_view name;
	Field field;
};

constexpr Known kKnown[] = {
	{"connection", Field::Connection},
	{"keep-alive", Field::KeepAlive},
	{"proxy-connection", Field::ProxyConnection},
	{"te", Field::Te},
	{"trailer", Field::Trailer},
	{"upgrade", Field::Upgrade},
	{"transfer-encoding", Field::TransferEncoding},
	{"content-length", Field::ContentLength},
	{"host", Field::Host},
	{"expect", Field::Expect},
	{"x-forwarded-for", Field::XForwardedFor},
	{"forwarded", Field::Forwarded},
	{"via", Field::Via},
	{"proxy-authorization", Field::ProxyAuthorization},
	{"proxy-authenticate", Field::ProxyAuthenticate},
};

} // namespace

bool iequals(std::string_view a, std::string_view b)
{
	if (a.size() != b.size())
		return false;
	for (size_t i = 0; i < a.size(); ++i)
		if (lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

Field classify(std::string_view name)
{
	// Most fields are none of these: the length check rejects them cheaply.
	for (const Known &k : kKnown)
		if (k.name.size() == name.size() && iequals(k.name, name))
			return k.field;
	return Field::Other;
}

std::string_view trim_ows(std::string_view s)
{
	while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
		s.remove_prefix(1);
	while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
		s.remove_suffix(1);
	return s;
}

void Head::clear()
{
	method = 0;
	method_name = {};
	target = {};
	status = 0;
	reason = {};
	major = minor = 1;
	headers.clear();
	framing = Framing::None;
	content_length = 0;
	keep_alive = true;
	upgrade = false;
	expect_continue = false;
	host = {};
}

const Header *Head::find(Field field) const
{
	for (const Header &h : headers)
		if (h.field == field)
			return &h;
	return nullptr;
}

bool Head::connection_lists(std::string_view name) const
{
	for (const Header &h : headers) {
		if (h.field != Field::Connection)
			continue;
		std::string_view v = h.value;
		while (!v.empty()) {
			size_t comma = v.find(',');
			std::string_view token = trim_ows(v.substr(0, comma));
			if (iequals(token, name))
				return true;
			if (comma == std::string_view::npos)
				break;
			v.remove_prefix(comma + 1);
		}
	}
	return false;
}

bool Head::is_connect() const { return request && method == HTTP_CONNECT; }
bool Head::is_head() const { return request && method == HTTP_HEAD; }

bool is_hop_by_hop(const Head &head, const Header &header)
{
	switch (header.field) {
	case Field::Connection:
	case Field::KeepAlive:
	case Field::ProxyConnection:
	case Field::Te:
	case Field::Trailer:
	case Field::Upgrade:
		return true;
	case Field::TransferEncoding:
	case Field::ContentLength:
	case Field::Host:
		return false;
	default:
		break;
	}
	return head.connection_lists(header.name);
}

} // namespace sonic::http
