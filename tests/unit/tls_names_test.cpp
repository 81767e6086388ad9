// Names a leaf can be minted for: what is accepted, its canonical form,
// and why the rest is refused.
#include "out/error.hpp"
#include "tls/names.hpp"

#include <catch2/catch.hpp>

using namespace sonic;
using namespace sonic::tls;

namespace {

std::string refusal(const std::string &input)
{
	try {
		parse_name(input);
	} catch (const Error &e) {
		CHECK(e.kind() == ErrorKind::Usage);
		return e.what();
	}
	FAIL("accepted: " << input);
	return {};
}

} // namespace

TEST_CASE("DNS names are lowercased and lose a trailing dot", "[tls][names]")
{
	CHECK(parse_name("Example.COM").text == "example.com");
	CHECK(parse_name("www.example.com.").text == "www.example.com");
	CHECK(parse_name("localhost").kind == NameKind::Dns);
	CHECK(parse_name("_dmarc.example.com").text == "_dmarc.example.com");
	CHECK(parse_name("xn--bcher-kva.example").text == "xn--bcher-kva.example");
	std::string longest = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
			      std::string(61, 'd');
	REQUIRE(longest.size() == 253);
	CHECK(parse_name(longest).text == longest);
}

TEST_CASE("wildcards are a whole leftmost label over two or more labels", "[tls][names]")
{
	HostName w = parse_name("*.Example.com");
	CHECK(w.kind == NameKind::Wildcard);
	CHECK(w.text == "*.example.com");
	CHECK_THAT(refusal("*.com"), Catch::Contains("at least two labels"));
	CHECK_THAT(refusal("*"), Catch::Contains("at least two labels"));
	CHECK_THAT(refusal("a.*.example.com"), Catch::Contains("leftmost label"));
	CHECK_THAT(refusal("f*.example.com"), Catch::Contains("leftmost label"));
	CHECK_THAT(refusal("**.example.com"), Catch::Contains("leftmost label"));
}

TEST_CASE("addresses are recognised and printed canonically", "[tls][names]")
{
	HostName v4 = parse_name("192.0.2.1");
	CHECK(v4.kind == NameKind::Ipv4);
	CHECK(v4.addr_len == 4);
	CHECK(v4.addr[0] == 192);
	HostName v6 = parse_name("2001:DB8:0:0::1");
	CHECK(v6.kind == NameKind::Ipv6);
	CHECK(v6.text == "2001:db8::1");
	CHECK(v6.addr_len == 16);
	CHECK(parse_name("[::1]").text == "::1");
	CHECK_THAT(refusal("[example.com]"), Catch::Contains("IPv6"));
	CHECK_THAT(refusal("1::2::3"), Catch::Contains("IPv6"));
	CHECK_THAT(refusal("1.2.3"), Catch::Contains("numeric"));
	CHECK_THAT(refusal("256.1.1.1"), Catch::Contains("numeric"));
}

TEST_CASE("bad names are refused, naming the name and why", "[tls][names]")
{
	CHECK_THAT(refusal(""), Catch::Contains("empty"));
	CHECK_THAT(refusal("a..b"), Catch::Contains("empty label") && Catch::Contains("[object = a..b]"));
	CHECK_THAT(refusal(".example.com"), Catch::Contains("empty label"));
	CHECK_THAT(refusal("."), Catch::Contains("empty label"));
	CHECK_THAT(refusal("exa mple.com"), Catch::Contains("label 'exa mple'"));
	CHECK_THAT(refusal("-a.example.com"), Catch::Contains("'-'"));
	CHECK_THAT(refusal("a-.example.com"), Catch::Contains("'-'"));
	CHECK_THAT(refusal(std::string(64, 'a') + ".com"), Catch::Contains("longer than 63"));
	std::string too_long = std::string(63, 'a') + "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
			       std::string(62, 'd');
	CHECK_THAT(refusal(too_long), Catch::Contains("longer than 253 bytes (254)"));
	CHECK_THAT(refusal(std::string("a\x01.com")), Catch::Contains("\\x01"));
}

TEST_CASE("internationalised names become their ASCII form or are refused", "[tls][names]")
{
	CHECK(parse_name("b\xc3\xbc" "cher.example").text == "xn--bcher-kva.example");
	CHECK(parse_name("B\xc3\x9c" "CHER.example").text == "xn--bcher-kva.example");
	CHECK_THAT(refusal("\xff\xfe.example"), Catch::Contains("internationalised"));
}

TEST_CASE("the quick cache key agrees with the full parse", "[tls][names]")
{
	char buf[256];
	for (const char *name : {"example.com", "Example.Com.", "*.example.com", "10.0.0.1", "::1", "WWW.A.B"}) {
		std::string_view key = quick_key(name, buf);
		REQUIRE_FALSE(key.empty());
		CHECK(std::string(key) == parse_name(name).text);
	}
	CHECK(quick_key("b\xc3\xbc" "cher.example", buf).empty());
	CHECK(quick_key("[::1]", buf).empty());
	CHECK(quick_key("", buf).empty());
}

TEST_CASE("a DNS name is covered by the wildcard one level up", "[tls][names]")
{
	CHECK(covering_wildcard(parse_name("a.example.com")) == std::optional<std::string>("*.example.com"));
	CHECK_FALSE(covering_wildcard(parse_name("example.com")));
	CHECK_FALSE(covering_wildcard(parse_name("*.example.com")));
	CHECK_FALSE(covering_wildcard(parse_name("10.0.0.1")));
}
