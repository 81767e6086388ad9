// libFuzzer target: the authority-form of CONNECT ("host:port") and the
// absolute-form of a forward proxy's requests ("http://host:port/path"),
// with the properties the proxy relies on when it connects and rebuilds
// the request line.
#include "http/serialize.hpp"
#include "http/target.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

void require(bool ok, const char *what)
{
	if (!ok) {
		std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
		std::abort();
	}
}

bool within(std::string_view part, std::string_view whole)
{
	return part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size();
}

void check_authority(std::string_view text, uint16_t default_port)
{
	auto a = sonic::http::parse_authority(text, default_port);
	if (!a)
		return;
	require(!a->host.empty(), "empty host accepted");
	require(a->port != 0, "port 0 accepted");
	require(text.find(a->host) != std::string_view::npos, "the host is not part of the authority");
	const bool v6 = a->host.find(':') != std::string::npos;
	// Printed back the way the proxy prints it, it parses to the same.
	std::string again = (v6 ? "[" + a->host + "]" : a->host) + ":" + std::to_string(a->port);
	auto b = sonic::http::parse_authority(again, default_port);
	require(b && b->host == a->host && b->port == a->port, "host:port does not parse back");
	require(sonic::http::host_part(text).size() <= text.size(), "host_part longer than its input");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const std::string_view text(reinterpret_cast<const char *>(data), size);
	check_authority(text, 443);
	check_authority(text, 80);
	if (auto f = sonic::http::parse_absolute_form(text)) {
		require(!f->authority.empty() && f->authority.find('@') == std::string_view::npos, "bad authority kept");
		require(within(f->authority, text), "authority outside the target");
		require(f->origin_form == "/" || within(f->origin_form, text), "origin-form outside the target");
		require(f->origin_form[0] == '/' || f->origin_form[0] == '?', "origin-form without / or ?");
		std::string line;
		sonic::http::append_request_line(line, "GET", f->origin_form);
		require(line.compare(0, 5, "GET /") == 0, "request line without an absolute path");
		check_authority(f->authority, 80);
	}
	return 0;
}
