// The ClientHello peek: hand-built hellos, real ones captured from
// openssl s_client and gnutls-cli at test time, split across segments and
// records, and garbage.
#include "tls/peek.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <csignal>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>

using namespace sonic::tls;

namespace {

std::string u16(size_t v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 255)}; }
std::string u24(size_t v) { return {static_cast<char>(v >> 16), static_cast<char>(v >> 8 & 255), static_cast<char>(v & 255)}; }

std::string ext(uint16_t type, const std::string &data) { return u16(type) + u16(data.size()) + data; }

std::string sni_ext(const std::string &name)
{
	std::string entry = std::string(1, '\0') + u16(name.size()) + name;
	return ext(0, u16(entry.size()) + entry);
}

std::string alpn_ext(const std::vector<std::string> &protos)
{
	std::string list;
	for (const std::string &p : protos)
		list += std::string(1, static_cast<char>(p.size())) + p;
	return ext(16, u16(list.size()) + list);
}

std::string versions_ext(const std::vector<uint16_t> &v)
{
	std::string list;
	for (uint16_t x : v)
		list += u16(x);
	return ext(43, std::string(1, static_cast<char>(list.size())) + list);
}

// A ClientHello handshake message (header included) with EXTS.
std::string hello_message(const std::string &exts, bool with_extensions = true)
{
	std::string body = u16(0x0303) + std::string(32, 'r') + std::string(1, '\0') + u16(4) + u16(0x1301) + u16(0xc02b) +
			   std::string("\x01\x00", 2);
	if (with_extensions)
		body += u16(exts.size()) + exts;
	return std::string(1, '\x01') + u24(body.size()) + body;
}

// MESSAGE in records of at most CHUNK bytes each.
std::string records(const std::string &message, size_t chunk = 16384)
{
	std::string out;
	for (size_t i = 0; i < message.size(); i += chunk) {
		std::string part = message.substr(i, chunk);
		out += std::string("\x16\x03\x01", 3) + u16(part.size()) + part;
	}
	return out;
}

// The first bytes CMD (with %PORT% replaced) sends to a socket listening
// on loopback: a real client's ClientHello.
std::string capture(std::string cmd)
{
	int l = socket(AF_INET, SOCK_STREAM, 0);
	sockaddr_in a{};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	REQUIRE(bind(l, reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0);
	REQUIRE(listen(l, 1) == 0);
	socklen_t len = sizeof(a);
	getsockname(l, reinterpret_cast<sockaddr *>(&a), &len);
	cmd.replace(cmd.find("%PORT%"), 6, std::to_string(ntohs(a.sin_port)));
	pid_t pid = fork();
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", (cmd + " </dev/null >/dev/null 2>&1").c_str(), nullptr);
		_exit(127);
	}
	std::string got;
	pollfd p{l, POLLIN, 0};
	if (poll(&p, 1, 10000) == 1) {
		int c = accept(l, nullptr, nullptr);
		auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
		while (parse_client_hello(got).status == HelloStatus::NeedMore && std::chrono::steady_clock::now() < until) {
			pollfd q{c, POLLIN, 0};
			if (poll(&q, 1, 1000) != 1)
				continue;
			char buf[4096];
			ssize_t n = read(c, buf, sizeof(buf));
			if (n <= 0)
				break;
			got.append(buf, static_cast<size_t>(n));
		}
		close(c);
	}
	close(l);
	kill(pid, SIGTERM);
	waitpid(pid, nullptr, 0);
	return got;
}

} // namespace

TEST_CASE("a hand-built hello gives its SNI, ALPN and versions", "[tls][peek]")
{
	std::string wire = records(hello_message(sni_ext("WWW.Example.com.") + alpn_ext({"h2", "http/1.1"}) +
						 versions_ext({0x0304, 0x0303})));
	ClientHello h = parse_client_hello(wire);
	REQUIRE(h.status == HelloStatus::Complete);
	CHECK(h.sni == "www.example.com");
	CHECK(h.alpn == std::vector<std::string>{"h2", "http/1.1"});
	CHECK(h.offers(0x0304));
	CHECK(h.best_modern() == 0x0304);
}

TEST_CASE("every prefix of a hello asks for more, never misjudges", "[tls][peek]")
{
	std::string wire = records(hello_message(sni_ext("a.test") + alpn_ext({"http/1.1"})));
	for (size_t n = 0; n < wire.size(); ++n)
		CHECK(parse_client_hello(wire.substr(0, n)).status == HelloStatus::NeedMore);
	CHECK(parse_client_hello(wire).status == HelloStatus::Complete);
}

TEST_CASE("a hello spread over many records is put together", "[tls][peek]")
{
	std::string msg = hello_message(sni_ext("split.test") + alpn_ext({"http/1.1"}) + ext(21, std::string(3000, '\0')));
	for (size_t chunk : {1, 7, 100, 1000}) {
		std::string wire = records(msg, chunk);
		ClientHello h = parse_client_hello(wire);
		REQUIRE(h.status == HelloStatus::Complete);
		CHECK(h.sni == "split.test");
		CHECK(parse_client_hello(wire.substr(0, wire.size() - 1)).status == HelloStatus::NeedMore);
	}
}

TEST_CASE("a hello without SNI, ALPN or extensions", "[tls][peek]")
{
	ClientHello h = parse_client_hello(records(hello_message({}, false)));
	REQUIRE(h.status == HelloStatus::Complete);
	CHECK(h.sni.empty());
	CHECK(h.alpn.empty());
	CHECK(h.versions == std::vector<uint16_t>{0x0303});
}

TEST_CASE("old versions are seen as offered", "[tls][peek]")
{
	std::string msg = hello_message(sni_ext("old.test"));
	msg[4] = 3, msg[5] = 1; // legacy_version TLS 1.0
	ClientHello h = parse_client_hello(records(msg));
	REQUIRE(h.status == HelloStatus::Complete);
	CHECK(h.versions == std::vector<uint16_t>{0x0301});
	CHECK(h.best_modern() == 0);
}

TEST_CASE("supported_versions decides the versions; an empty one is malformed", "[tls][peek]")
{
	// RFC 8446 4.2.1: versions<2..254>. An empty list (fuzz finding
	// client_hello-crash-3a626ec9) was taken as a whole hello offering no
	// version at all; so is an odd-length one refused.
	std::string empty = hello_message(sni_ext("v.test") + ext(43, std::string(1, '\0')));
	CHECK(parse_client_hello(records(empty)).status == HelloStatus::Malformed);
	std::string odd = hello_message(ext(43, std::string("\x03\x03\x04\x03", 4)));
	CHECK(parse_client_hello(records(odd)).status == HelloStatus::Malformed);
	// With the extension, legacy_version is not used to pick a version:
	// a client_version above TLS 1.2 beside supported_versions {TLS 1.1}
	// offers nothing modern.
	std::string only_old = hello_message(versions_ext({0x0302}));
	only_old[4] = 3, only_old[5] = 4; // legacy_version 0x0304
	ClientHello o = parse_client_hello(records(only_old));
	REQUIRE(o.status == HelloStatus::Complete);
	CHECK(o.has_supported_versions);
	CHECK(o.versions == std::vector<uint16_t>{0x0302});
	CHECK(o.best_modern() == 0);
	// Without it, the same client_version is not a TLS 1.3 offer: TLS 1.2
	// is the most it gets (RFC 8446 4.2.1, RFC 5246 E.1).
	std::string legacy = hello_message(sni_ext("v.test"));
	legacy[4] = 3, legacy[5] = 4;
	ClientHello l = parse_client_hello(records(legacy));
	REQUIRE(l.status == HelloStatus::Complete);
	CHECK_FALSE(l.has_supported_versions);
	CHECK(l.versions == std::vector<uint16_t>{0x0304});
	CHECK(l.best_modern() == 0x0303);
	// A TLS 1.3 hello keeps legacy_version 0x0303 and lists its versions.
	ClientHello t = parse_client_hello(records(hello_message(versions_ext({0x0304}))));
	REQUIRE(t.status == HelloStatus::Complete);
	CHECK(t.versions == std::vector<uint16_t>{0x0304});
	CHECK(t.legacy_version == 0x0303);
	CHECK(t.best_modern() == 0x0304);
}

TEST_CASE("not TLS, malformed and oversized hellos are told apart", "[tls][peek]")
{
	CHECK(parse_client_hello("GET / HTTP/1.1\r\n").status == HelloStatus::NotTls);
	CHECK(parse_client_hello("SSH-2.0-OpenSSH_9.2\r\n").status == HelloStatus::NotTls);
	CHECK(parse_client_hello(std::string("\x16\x02", 2)).status == HelloStatus::NotTls);
	CHECK(parse_client_hello(std::string("\x80\x2e\x01\x03\x01", 5)).status == HelloStatus::NotTls); // SSLv2
	// A handshake record that holds a ServerHello.
	std::string sh = hello_message({});
	sh[0] = 2;
	CHECK(parse_client_hello(records(sh)).status == HelloStatus::NotTls);
	// Lengths that point past their structure.
	std::string bad = hello_message(sni_ext("x.test"));
	bad[4 + 2 + 32] = 40; // session id longer than 32
	CHECK(parse_client_hello(records(bad)).status == HelloStatus::Malformed);
	std::string twice = hello_message(sni_ext("a.test") + sni_ext("b.test"));
	CHECK(parse_client_hello(records(twice)).status == HelloStatus::Malformed);
	CHECK(parse_client_hello(records(hello_message(alpn_ext({""})))).status == HelloStatus::Malformed);
	// A zero-length record, and a record of another type after the first.
	CHECK(parse_client_hello(std::string("\x16\x03\x01\x00\x00", 5)).status == HelloStatus::Malformed);
	std::string first = records(hello_message(sni_ext("x.test")), 10).substr(0, 15);
	CHECK(parse_client_hello(first + std::string("\x17\x03\x03\x00\x01x", 6)).status == HelloStatus::Malformed);
	// Over 16 KiB: refused from its header on.
	std::string big = hello_message(ext(21, std::string(20000, '\0')));
	CHECK(parse_client_hello(records(big).substr(0, 9)).status == HelloStatus::TooBig);
}

TEST_CASE("random bytes never crash the parser", "[tls][peek]")
{
	uint32_t x = 12345;
	std::string base = records(hello_message(sni_ext("fuzz.test") + alpn_ext({"h2"}) + versions_ext({0x0304})));
	for (int round = 0; round < 20000; ++round) {
		std::string s = base;
		for (int k = 0; k < 4; ++k) {
			x = x * 1103515245 + 12345;
			s[(x >> 8) % s.size()] = static_cast<char>(x >> 24);
		}
		x = x * 1103515245 + 12345;
		(void)parse_client_hello(s.substr(0, (x >> 8) % (s.size() + 1)));
	}
	SUCCEED();
}

TEST_CASE("openssl s_client's hello", "[tls][peek]")
{
	std::string wire = capture("openssl s_client -connect 127.0.0.1:%PORT% -servername Real.Example.org -alpn h2,http/1.1");
	ClientHello h = parse_client_hello(wire);
	REQUIRE(h.status == HelloStatus::Complete);
	CHECK(h.sni == "real.example.org");
	CHECK(h.alpn == std::vector<std::string>{"h2", "http/1.1"});
	CHECK(h.offers(0x0304));
	CHECK(h.offers(0x0303));
	// Cut anywhere, the same bytes ask for more.
	for (size_t n : {size_t(1), size_t(5), wire.size() / 2, wire.size() - 1})
		CHECK(parse_client_hello(wire.substr(0, n)).status == HelloStatus::NeedMore);
}

TEST_CASE("gnutls-cli's hello, and one without SNI", "[tls][peek]")
{
	ClientHello h = parse_client_hello(capture("gnutls-cli --insecure --alpn=http/1.1 --sni-hostname=gnu.test -p %PORT% 127.0.0.1"));
	REQUIRE(h.status == HelloStatus::Complete);
	CHECK(h.sni == "gnu.test");
	CHECK(h.alpn == std::vector<std::string>{"http/1.1"});
	ClientHello ip = parse_client_hello(capture("openssl s_client -connect 127.0.0.1:%PORT% -noservername"));
	REQUIRE(ip.status == HelloStatus::Complete);
	CHECK(ip.sni.empty());
}

TEST_CASE("SNI globs", "[tls][peek]")
{
	CHECK(name_matches("*.example.com", "a.example.com"));
	CHECK(name_matches("*.Example.com", "A.example.COM"));
	CHECK_FALSE(name_matches("*.example.com", "a.b.example.com"));
	CHECK_FALSE(name_matches("*.example.com", "example.com"));
	CHECK(name_matches("**.example.com", "example.com"));
	CHECK(name_matches("**.example.com", "a.b.example.com"));
	CHECK_FALSE(name_matches("**.example.com", "badexample.com"));
	CHECK(name_matches("bank*.test", "bank1.test"));
	CHECK_FALSE(name_matches("bank*.test", "bank1.x.test"));
	CHECK(name_matches("exact.test", "exact.test"));
	CHECK_FALSE(name_matches("exact.test", "exact.test.evil"));
}
