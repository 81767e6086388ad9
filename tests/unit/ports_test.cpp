#include "bpf/accel.hpp"
#include "net/ports.hpp"
#include "out/error.hpp"

#include <catch2/catch.hpp>

using sonic::net::PortRange;
using sonic::net::parse_port_list;

TEST_CASE("port lists parse, sort and merge", "[ports]")
{
	CHECK(parse_port_list("80") == std::vector<PortRange>{{80, 80}});
	CHECK(parse_port_list("443,80") == std::vector<PortRange>{{80, 80}, {443, 443}});
	CHECK(parse_port_list("8000-8100,8050-9000,9001") == std::vector<PortRange>{{8000, 9001}});
	CHECK(parse_port_list("1-65535") == std::vector<PortRange>{{1, 65535}});
	CHECK(sonic::net::format_port_list(parse_port_list("9090,80,8000-8100")) == "80,8000-8100,9090");
}

TEST_CASE("bad port lists are usage errors naming the item", "[ports]")
{
	for (const char *bad : {"", "0", "65536", "80,", ",80", "http", "90-80", "1-", "-5", "8o"}) {
		INFO(bad);
		try {
			parse_port_list(bad);
			FAIL("accepted");
		} catch (const sonic::Error &e) {
			CHECK(e.kind() == sonic::ErrorKind::Usage);
		}
	}
	CHECK_THROWS_WITH(parse_port_list("80,http"), Catch::Contains("'http' is not a port number"));
	CHECK_THROWS_WITH(parse_port_list("70000"), Catch::Contains("outside 1-65535"));
}

TEST_CASE("port filters round-trip through the kernel bitmap", "[ports][abi]")
{
	auto ranges = parse_port_list("22,80,443,8000-8100,65535");
	auto bitmap = sonic::bpf::ports_bitmap(ranges);
	CHECK(sonic::bpf::ports_from_bitmap(bitmap) == ranges);
	CHECK((bitmap.bits[80 / 64] >> (80 % 64) & 1) == 1);
	CHECK((bitmap.bits[81 / 64] >> (81 % 64) & 1) == 0);
	CHECK(sonic::net::port_in(ranges, 8050));
	CHECK_FALSE(sonic::net::port_in(ranges, 8101));
}
