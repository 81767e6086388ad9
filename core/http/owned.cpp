#include "http/owned.hpp"

#include "http/serialize.hpp"

#include <algorithm>
#include <llhttp.h>

namespace sonic::http {

namespace {

bool is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
		return true;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
	case '-': case '.': case '^': case '_': case '`': case '|': case '~':
		return true;
	default:
		return false;
	}
}

// llhttp's number for METHOD, or -1 for one it does not know.
int method_number(std::string_view method)
{
	for (int m = 0; m < 64; ++m) {
		const char *name = llhttp_method_name(static_cast<llhttp_method_t>(m));
		if (name && method == name)
			return m;
	}
	return -1;
}

} // namespace

std::optional<std::string_view> Fields::get(std::string_view name) const
{
	for (const Entry &e : entries_)
		if (iequals(e.name, name))
			return std::string_view(e.value);
	return std::nullopt;
}

std::optional<std::string> Fields::get_combined(std::string_view name) const
{
	std::optional<std::string> out;
	for (const Entry &e : entries_) {
		if (!iequals(e.name, name))
			continue;
		if (out)
			out->append(", ").append(e.value);
		else
			out = e.value;
	}
	return out;
}

void Fields::set(std::string_view name, std::string_view value)
{
	for (auto it = entries_.begin(); it != entries_.end(); ++it) {
		if (!iequals(it->name, name))
			continue;
		it->value.assign(value);
		// Later duplicates go; the first keeps its place.
		auto rest = std::remove_if(it + 1, entries_.end(), [&](const Entry &e) { return iequals(e.name, name); });
		entries_.erase(rest, entries_.end());
		return;
	}
	append(name, value);
}

void Fields::append(std::string_view name, std::string_view value)
{
	entries_.push_back(Entry{std::string(name), std::string(value)});
}

void Fields::remove(std::string_view name)
{
	std::erase_if(entries_, [&](const Entry &e) { return iequals(e.name, name); });
}

bool valid_field_name(std::string_view name)
{
	if (name.empty())
		return false;
	for (char c : name)
		if (!is_tchar(static_cast<unsigned char>(c)))
			return false;
	return true;
}

bool valid_field_value(std::string_view value)
{
	for (char c : value) {
		unsigned char u = static_cast<unsigned char>(c);
		if (u == '\r' || u == '\n' || u == 0 || (u < 0x20 && u != '\t') || u == 0x7f)
			return false;
	}
	return true;
}

Request Request::from(const Head &head)
{
	Request r;
	r.method.assign(head.method_name);
	r.target.assign(head.target);
	r.minor = head.minor;
	for (const Header &h : head.headers)
		r.headers.append(h.name, h.value);
	return r;
}

Head Request::view() const
{
	Head h;
	h.request = true;
	int m = method_number(method);
	h.method = static_cast<uint8_t>(m < 0 ? HTTP_GET : m);
	h.method_name = method;
	h.target = target;
	h.minor = minor;
	for (const Fields::Entry &e : headers.entries()) {
		Header f{e.name, e.value, classify(e.name)};
		if (f.field == Field::Host && h.host.empty())
			h.host = f.value;
		h.headers.push_back(f);
	}
	if (body_read) {
		h.framing = body.empty() ? Framing::None : Framing::Length;
		h.content_length = body.size();
	} else if (const Header *te = h.find(Field::TransferEncoding); te) {
		h.framing = Framing::Chunked;
	} else if (const Header *cl = h.find(Field::ContentLength); cl) {
		uint64_t n = 0;
		for (char c : cl->value)
			if (c >= '0' && c <= '9')
				n = n * 10 + static_cast<uint64_t>(c - '0');
		h.framing = n ? Framing::Length : Framing::None;
		h.content_length = n;
	}
	return h;
}

Response Response::from(const Head &head)
{
	Response r;
	r.status = head.status;
	r.reason.assign(head.reason);
	for (const Header &h : head.headers)
		r.headers.append(h.name, h.value);
	return r;
}

Head Response::view(const Head &framing) const
{
	Head h;
	h.request = false;
	h.status = status;
	h.reason = phrase();
	h.major = framing.major;
	h.minor = framing.minor;
	for (const Fields::Entry &e : headers.entries())
		h.headers.push_back(Header{e.name, e.value, classify(e.name)});
	h.framing = framing.framing;
	h.content_length = framing.content_length;
	h.keep_alive = framing.keep_alive;
	h.upgrade = framing.upgrade;
	return h;
}

std::string_view Response::phrase() const { return reason.empty() ? status_reason(status) : std::string_view(reason); }

} // namespace sonic::http
