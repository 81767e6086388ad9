#include "tls/names.hpp"

#include "out/error.hpp"

#include <arpa/inet.h>
#include <gnutls/gnutls.h>

#include <vector>

namespace sonic::tls {

namespace {

constexpr size_t kMaxName = 253;
constexpr size_t kMaxLabel = 63;

[[noreturn]] void refuse(std::string_view input, const std::string &why)
{
	throw usage_error("invalid name", why, printable_name(input));
}

bool is_ascii(std::string_view s)
{
	for (unsigned char c : s)
		if (c >= 0x80)
			return false;
	return true;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool label_byte(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'; }

bool all_digits(std::string_view s)
{
	for (char c : s)
		if (c < '0' || c > '9')
			return false;
	return !s.empty();
}

std::string to_ascii(std::string_view input)
{
	gnutls_datum_t out{nullptr, 0};
	int rc = gnutls_idna_map(input.data(), static_cast<unsigned>(input.size()), &out, 0);
	if (rc < 0)
		refuse(input, std::string("an internationalised name that has no ASCII (IDNA) form: ") + gnutls_strerror(rc));
	std::string ascii(reinterpret_cast<const char *>(out.data), out.size);
	gnutls_free(out.data);
	return ascii;
}

bool parse_address(std::string_view input, std::string_view text, HostName &name)
{
	std::string s(text);
	char canonical[INET6_ADDRSTRLEN];
	if (inet_pton(AF_INET, s.c_str(), name.addr) == 1) {
		name.kind = NameKind::Ipv4;
		name.addr_len = 4;
	} else if (s.find(':') != std::string::npos) {
		if (inet_pton(AF_INET6, s.c_str(), name.addr) != 1)
			refuse(input, "not a valid IPv6 address");
		name.kind = NameKind::Ipv6;
		name.addr_len = 16;
	} else {
		return false;
	}
	inet_ntop(name.addr_len == 4 ? AF_INET : AF_INET6, name.addr, canonical, sizeof(canonical));
	name.text = canonical;
	return true;
}

void check_labels(std::string_view input, const std::string &name, bool &wildcard)
{
	std::vector<std::string_view> labels;
	std::string_view rest = name;
	while (true) {
		size_t dot = rest.find('.');
		labels.push_back(rest.substr(0, dot));
		if (dot == std::string_view::npos)
			break;
		rest.remove_prefix(dot + 1);
	}
	wildcard = false;
	for (size_t i = 0; i < labels.size(); ++i) {
		std::string_view label = labels[i];
		if (label.empty())
			refuse(input, "it has an empty label (a leading dot or \"..\")");
		if (label.size() > kMaxLabel)
			refuse(input, "label '" + std::string(label.substr(0, 20)) + "...' is longer than 63 bytes");
		if (label == "*" && i == 0) {
			if (labels.size() < 3)
				refuse(input, "a wildcard must cover a domain of at least two labels (*.example.com)");
			wildcard = true;
			continue;
		}
		for (char c : label) {
			if (c == '*')
				refuse(input, "'*' is only allowed as the whole leftmost label (*.example.com)");
			if (!label_byte(c))
				refuse(input, "label '" + printable_name(label) +
						      "' has a byte other than a letter, a digit, '-' or '_'");
		}
		if (label.front() == '-' || label.back() == '-')
			refuse(input, "label '" + std::string(label) + "' starts or ends with '-'");
	}
	if (all_digits(labels.back()))
		refuse(input, "its last label is numeric, and it is no IPv4 address");
}

} // namespace

std::string printable_name(std::string_view input)
{
	static const char digits[] = "0123456789abcdef";
	std::string out;
	for (unsigned char c : input.substr(0, 80)) {
		if (c < 0x20 || c == 0x7f || c == '\\') {
			out += "\\x";
			out += digits[c >> 4];
			out += digits[c & 15];
		} else {
			out += static_cast<char>(c);
		}
	}
	if (input.size() > 80)
		out += "... (" + std::to_string(input.size()) + " bytes)";
	return out;
}

HostName parse_name(std::string_view input)
{
	HostName name;
	if (input.empty())
		refuse(input, "the name is empty");
	std::string_view text = input;
	if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
		if (!parse_address(input, text.substr(1, text.size() - 2), name) || name.kind != NameKind::Ipv6)
			refuse(input, "not a valid IPv6 address");
		return name;
	}
	if (text.size() <= INET6_ADDRSTRLEN && parse_address(input, text, name))
		return name;

	std::string ascii = is_ascii(text) ? std::string(text) : to_ascii(text);
	for (char &c : ascii)
		c = lower(c);
	if (ascii.size() > 1 && ascii.back() == '.')
		ascii.pop_back();
	if (ascii.size() > kMaxName)
		refuse(input, "longer than 253 bytes (" + std::to_string(ascii.size()) + ")");
	bool wildcard = false;
	check_labels(input, ascii, wildcard);
	name.kind = wildcard ? NameKind::Wildcard : NameKind::Dns;
	name.text = std::move(ascii);
	return name;
}

std::string_view quick_key(std::string_view input, char (&buf)[256])
{
	if (input.empty() || input.size() > kMaxName + 1)
		return {};
	bool copy = input.back() == '.';
	for (char c : input) {
		if (static_cast<unsigned char>(c) >= 0x80 || c == '[')
			return {};
		copy |= (c >= 'A' && c <= 'Z');
	}
	if (!copy)
		return input;
	size_t n = input.size() - (input.back() == '.' ? 1 : 0);
	for (size_t i = 0; i < n; ++i)
		buf[i] = lower(input[i]);
	return std::string_view(buf, n);
}

std::optional<std::string> covering_wildcard(const HostName &name)
{
	if (name.kind != NameKind::Dns)
		return std::nullopt;
	size_t dot = name.text.find('.');
	if (dot == std::string::npos || name.text.find('.', dot + 1) == std::string::npos)
		return std::nullopt;
	return "*" + name.text.substr(dot);
}

} // namespace sonic::tls
