// Request targets a proxy takes apart: CONNECT's authority-form and the
// absolute-form of a forward proxy's requests.
#include "http/serialize.hpp"
#include "http/target.hpp"

#include <catch2/catch.hpp>

using namespace sonic::http;

TEST_CASE("authority-form: host and port", "[http]")
{
	auto a = parse_authority("Example.com:8443", 443);
	REQUIRE(a);
	CHECK(a->host == "Example.com");
	CHECK(a->port == 8443);
	a = parse_authority("example.com", 443);
	REQUIRE(a);
	CHECK(a->port == 443);
	a = parse_authority("[2001:db8::1]:8080", 80);
	REQUIRE(a);
	CHECK(a->host == "2001:db8::1");
	CHECK(a->port == 8080);
	for (const char *bad : {"", ":80", "host:", "host:0", "host:65536", "host:99999999999", "host:8x", "host:+80",
				"host: 80", "[::1", "[::1]x", "[]:80", "[", "host:80:81", "[[x]", "[example.com]:80",
				"a b:80", "a/b", "a@b:80", "a%zz", "a%4", "[::1%eth0]:80"})
		CHECK_FALSE(parse_authority(bad, 80));
	a = parse_authority("xn--bcher-kva.example:80", 443);
	REQUIRE(a);
	CHECK(parse_authority("a%41b.example_x~", 80));
	CHECK(parse_authority("[::ffff:10.0.0.1]:80", 80));
	CHECK(host_part("[::1]:80") == "[::1]");
	CHECK(host_part("a.b:80") == "a.b");
}

TEST_CASE("absolute-form: authority and origin-form", "[http]")
{
	auto f = parse_absolute_form("HTTP://a.example:81/p?q=1");
	REQUIRE(f);
	CHECK(f->authority == "a.example:81");
	CHECK(f->origin_form == "/p?q=1");
	f = parse_absolute_form("http://a.example?q");
	REQUIRE(f);
	CHECK(f->authority == "a.example");
	CHECK(f->origin_form == "?q");
	std::string line;
	append_request_line(line, "GET", f->origin_form);
	CHECK(line == "GET /?q HTTP/1.1\r\n");
	f = parse_absolute_form("http://a.example");
	REQUIRE(f);
	CHECK(f->origin_form == "/");
	for (const char *bad : {"/p", "https://a/", "http://", "http:///p", "http://user@a/", "http:/a", "ftp://a/"})
		CHECK_FALSE(parse_absolute_form(bad));
}
