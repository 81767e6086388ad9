#include "bpf/libbpf.hpp"
#include "sys/caps.hpp"
#include "sys/mounts.hpp"

#include <catch2/catch.hpp>

using namespace sonic::sys;

TEST_CASE("mount table parsing finds cgroup2 where it is", "[sys]")
{
	const char *hybrid = "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0\n"
			     "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n"
			     "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n"
			     "bpf /sys/fs/bpf bpf rw,relatime,mode=700 0 0\n";
	auto mounts = parse_mounts(hybrid);
	REQUIRE(mounts.size() == 4);
	CHECK(cgroup2_root(mounts) == std::optional<std::string>("/sys/fs/cgroup/unified"));
	CHECK(mounts[3].fstype == "bpf");
	CHECK_FALSE(cgroup2_root(parse_mounts("proc /proc proc rw 0 0\n")).has_value());
}

TEST_CASE("mount paths with escaped spaces decode", "[sys]")
{
	auto mounts = parse_mounts("cgroup2 /mnt/my\\040cgroups cgroup2 rw 0 0\n");
	REQUIRE(mounts.size() == 1);
	CHECK(mounts[0].target == "/mnt/my cgroups");
}

TEST_CASE("effective capabilities come from CapEff", "[sys]")
{
	const char *status = "Name:\tsonic\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
	uint64_t eff = parse_cap_eff(status);
	CHECK(eff == 0x000001ffffffffffULL);
	CHECK(missing_caps(eff, {Cap::Bpf, Cap::NetAdmin, Cap::Perfmon}).empty());
	CHECK(parse_cap_eff("Name:\tx\n") == 0);
}

TEST_CASE("missing capabilities are named, CAP_SYS_ADMIN stands in for BPF and PERFMON", "[sys]")
{
	const uint64_t net_admin = uint64_t{1} << 12;
	const uint64_t sys_admin = uint64_t{1} << 21;
	auto missing = missing_caps(net_admin, {Cap::Bpf, Cap::NetAdmin, Cap::Perfmon});
	REQUIRE(missing.size() == 2);
	CHECK(cap_name(missing[0]) == "CAP_BPF");
	CHECK(cap_name(missing[1]) == "CAP_PERFMON");
	CHECK(missing_caps(net_admin | sys_admin, {Cap::Bpf, Cap::NetAdmin, Cap::Perfmon}).empty());
	CHECK(missing_caps(0, {Cap::NetAdmin}).size() == 1);
}

TEST_CASE("libbpf's reason is its failure line plus the verifier's complaint", "[libbpf]")
{
	const std::string log = "libbpf: prog 'accel_sockops': BPF program load failed: Permission denied\n"
				"libbpf: prog 'accel_sockops': -- BEGIN PROG LOAD LOG --\n"
				"0: R1=ctx() R10=fp0\n"
				"38: (61) r2 = *(u32 *)(r2 +0)\n"
				"dereference of modified ctx ptr R2 off=24 disallowed\n"
				"processed 21 insns (limit 1000000) max_states_per_insn 0 total_states 2\n"
				"-- END PROG LOAD LOG --\n"
				"libbpf: prog 'accel_sockops': failed to load: -13\n"
				"libbpf: failed to load object 'accel'\n";
	CHECK(sonic::bpf::libbpf_reason(log) ==
	      "prog 'accel_sockops': BPF program load failed: Permission denied: "
	      "dereference of modified ctx ptr R2 off=24 disallowed");
	CHECK(sonic::bpf::libbpf_reason("libbpf: map 'x': failed to create: Invalid argument(-22)\n") ==
	      "map 'x': failed to create: Invalid argument(-22)");
	CHECK(sonic::bpf::libbpf_reason("").empty());
}
