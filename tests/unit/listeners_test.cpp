// The listening sockets read from /proc/net/tcp{,6}: which cover an address
// sonic wants (the pid lookup behind "address already in use by pid N").
#include "net/listeners.hpp"

#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace sonic::net;

namespace {

const char *const kTcp =
	"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	"   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0\n"
	"   1: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 100 0 0 10 0\n"
	"   2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 20 4 30 10 -1\n"
	"   3: garbage\n";
const char *const kTcp6 =
	"  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	"   0: 00000000000000000000000000000000:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0 100 0 0 10 0\n"
	"   1: 00000000000000000000000001000000:1F93 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2002 1 0 100 0 0 10 0\n"
	"   2: 0000000000000000FFFF00000100007F:1F94 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2003 1 0 100 0 0 10 0\n";

bool covered(const std::vector<TcpListener> &ls, const char *endpoint)
{
	Endpoint e = parse_endpoint(endpoint);
	for (const TcpListener &l : ls)
		if (covers(l, e))
			return true;
	return false;
}

} // namespace

TEST_CASE("/proc/net/tcp: listening sockets only, with their inodes", "[net]")
{
	auto v4 = parse_proc_net_tcp(kTcp, AF_INET);
	REQUIRE(v4.size() == 2);
	CHECK(to_string(v4[0].addr) == "0.0.0.0");
	CHECK(v4[0].port == 8080);
	CHECK(v4[0].inode == 1001);
	CHECK(to_string(v4[1].addr) == "127.0.0.1");
	CHECK(v4[1].port == 8081);
	auto v6 = parse_proc_net_tcp(kTcp6, AF_INET6);
	REQUIRE(v6.size() == 3);
	CHECK(to_string(v6[0].addr) == "::");
	CHECK(to_string(v6[1].addr) == "::1");
	CHECK(v6[2].addr.family == AF_INET); // ::ffff:127.0.0.1 is an IPv4 listener
	CHECK(to_string(v6[2].addr) == "127.0.0.1");
	CHECK(v6[2].inode == 2003);
}

TEST_CASE("a listener covers its address and the addresses under its wildcard", "[net]")
{
	auto v4 = parse_proc_net_tcp(kTcp, AF_INET);
	auto v6 = parse_proc_net_tcp(kTcp6, AF_INET6);
	CHECK(covered(v4, "127.0.0.1:8080"));  // under 0.0.0.0:8080
	CHECK(covered(v4, "0.0.0.0:8081"));    // a wildcard over 127.0.0.1:8081
	CHECK(covered(v4, "127.0.0.1:8081"));
	CHECK_FALSE(covered(v4, "10.0.0.1:8081"));
	CHECK_FALSE(covered(v4, "127.0.0.1:8082"));
	CHECK_FALSE(covered(v4, "[::1]:8080"));
	CHECK(covered(v6, "127.0.0.1:8082")); // [::]:8082 may take IPv4
	CHECK(covered(v6, "[::1]:8082"));
	CHECK(covered(v6, "[::1]:8083"));
	CHECK_FALSE(covered(v6, "[::2]:8083"));
	CHECK(covered(v6, "127.0.0.1:8084"));
}

TEST_CASE("the holder of a socket is found by its inode", "[net]")
{
	int fd = ::socket(AF_INET, SOCK_STREAM, 0);
	REQUIRE(fd >= 0);
	REQUIRE(::listen(fd, 1) == 0); // an ephemeral port on every address
	sockaddr_storage ss{};
	socklen_t len = sizeof(ss);
	REQUIRE(getsockname(fd, reinterpret_cast<sockaddr *>(&ss), &len) == 0);
	const uint16_t port = ntohs(reinterpret_cast<sockaddr_in &>(ss).sin_port);
	auto ls = listeners_of(parse_endpoint("127.0.0.1:" + std::to_string(port)));
	REQUIRE(ls.size() == 1);
	auto holders = socket_holders({ls[0].inode});
	::close(fd);
	REQUIRE(holders.size() == 1);
	CHECK(holders[0].pid == getpid());
	CHECK(describe(holders) == "pid " + std::to_string(getpid()) + " (" + holders[0].comm + ")");
	CHECK(describe({}).empty());
	CHECK(describe({{1, "init"}, {7, "nginx"}}) == "pids 1 (init), 7 (nginx)");
	CHECK(socket_holders({}).empty());
}
