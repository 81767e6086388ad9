// The ABI of bpf/sonic_abi.h as the programs see it. core/bpf/abi_check.cpp
// static_asserts the layouts; these checks document the values that cross
// the boundary and fail loudly if a counter or struct changes shape.
#include "bpf/accel.hpp"
#include "bpf/fw.hpp"
#include "bpf/splice.hpp"
#include "sonic_abi.h"

#include <catch2/catch.hpp>
#include <cstddef>
#include <set>

TEST_CASE("map key and value sizes", "[abi]")
{
	CHECK(sizeof(struct sonic_accel_key) == 48);
	CHECK(sizeof(struct sonic_accel_sock) == 24);
	CHECK(sizeof(struct sonic_accel_cgroup) == 16);
	CHECK(sizeof(struct sonic_accel_local_key) == 24);
	CHECK(sizeof(struct sonic_accel_ports) == 8192);
	CHECK(sizeof(struct sonic_accel_iter) == 56);
	CHECK(sizeof(struct sonic_meta) == 40);
	CHECK(sizeof(struct sonic_accel_stats) == 8 * SONIC_ACCEL_NR_COUNTERS);
}

TEST_CASE("the accel key puts addresses before ports", "[abi]")
{
	CHECK(offsetof(struct sonic_accel_key, netns) == 0);
	CHECK(offsetof(struct sonic_accel_key, local_ip) == 8);
	CHECK(offsetof(struct sonic_accel_key, remote_ip) == 24);
	CHECK(offsetof(struct sonic_accel_key, local_port) == 40);
	CHECK(offsetof(struct sonic_accel_key, remote_port) == 42);
	CHECK(offsetof(struct sonic_accel_key, reserved) == 44);
}

TEST_CASE("every counter has a unique snake_case name", "[abi]")
{
	std::set<std::string> names;
	for (size_t i = 0; i < SONIC_ACCEL_NR_COUNTERS; ++i) {
		std::string n(sonic::bpf::accel_counter_name(i));
		CHECK(n != "unknown");
		CHECK(n.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string::npos);
		names.insert(n);
	}
	CHECK(names.size() == SONIC_ACCEL_NR_COUNTERS);
	CHECK(sonic::bpf::accel_counter_name(SONIC_ACCEL_REDIRECTS) == "redirects");
	CHECK(sonic::bpf::accel_counter_name(SONIC_ACCEL_REDIRECT_BYTES) == "redirect_bytes");
}

TEST_CASE("splice state and counters", "[abi]")
{
	CHECK(sizeof(struct sonic_splice_sock) == 40);
	CHECK(offsetof(struct sonic_splice_sock, peer) == 0);
	CHECK(offsetof(struct sonic_splice_sock, redirected) == 8);
	CHECK(offsetof(struct sonic_splice_sock, passed) == 16);
	CHECK(offsetof(struct sonic_splice_sock, peer_addr) == 24);
	CHECK(offsetof(struct sonic_splice_sock, peer_base) == 32);
	CHECK(offsetof(struct sonic_splice_sock, flags) == 36);
	CHECK(sizeof(struct sonic_splice_stats) == 8 * SONIC_SPLICE_NR_COUNTERS);
	// The limits the man page states.
	CHECK(SONIC_SPLICE_BACKLOG_LIMIT == 4u << 20);
	CHECK(SONIC_SPLICE_BACKLOG_HARD_LIMIT == 32u << 20);

	std::set<std::string> names;
	for (size_t i = 0; i < SONIC_SPLICE_NR_COUNTERS; ++i) {
		std::string n(sonic::bpf::splice_counter_name(i));
		CHECK(n != "unknown");
		CHECK(n.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string::npos);
		names.insert(n);
	}
	CHECK(names.size() == SONIC_SPLICE_NR_COUNTERS);
	CHECK(sonic::bpf::splice_counter_name(SONIC_SPLICE_REDIRECT_BYTES) == "redirect_bytes");
	CHECK(sonic::bpf::splice_counter_name(SONIC_SPLICE_RESUMED) == "resumed");
	CHECK(sonic::bpf::splice_counter_name(SONIC_SPLICE_EMPTY) == "empty");
}

TEST_CASE("splice states have names", "[abi]")
{
	using sonic::bpf::SpliceState;
	for (SpliceState s : {SpliceState::Spliced, SpliceState::Draining, SpliceState::CopyPending, SpliceState::Copy,
			      SpliceState::Ended, SpliceState::Failed})
		CHECK(sonic::bpf::splice_state_name(s) != "unknown");
}

TEST_CASE("fw maps: keys, values and counters", "[abi]")
{
	CHECK(sizeof(struct sonic_fw_lpm_key) == 20);
	CHECK(offsetof(struct sonic_fw_lpm_key, prefixlen) == 0);
	CHECK(offsetof(struct sonic_fw_lpm_key, addr) == 4);
	CHECK(sizeof(struct sonic_fw_rule) == 144);
	CHECK(offsetof(struct sonic_fw_rule, id) == 4);
	CHECK(offsetof(struct sonic_fw_rule, ifindex) == 8);
	CHECK(offsetof(struct sonic_fw_rule, interval_ns) == 32);
	CHECK(offsetof(struct sonic_fw_rule, ranges) == 80);
	CHECK(sizeof(struct sonic_fw_config) == 16);
	CHECK(sizeof(struct sonic_fw_port_key) == 4);
	CHECK(sizeof(struct sonic_fw_rule_stats) == 32);
	CHECK(sizeof(struct sonic_fw_bucket_key) == 24);
	CHECK(sizeof(struct sonic_fw_bucket) == 8);
	CHECK(sizeof(struct sonic_fw_block) == 96);
	CHECK(offsetof(struct sonic_fw_block, reason) == 32);
	CHECK(sizeof(struct sonic_fw_flow_key) == 44);
	CHECK(sizeof(struct sonic_fw_flow) == 48);
	CHECK(sizeof(struct sonic_fw_stats) == 8 * SONIC_FW_NR_COUNTERS);
	// A rule slot is one bit of an index entry's 64-bit mask.
	CHECK(SONIC_FW_MAX_RULES == 64);
	// The reason fits the man page's "at most 63 bytes".
	CHECK(SONIC_FW_REASON_LEN == 64);

	std::set<std::string> names;
	for (size_t i = 0; i < SONIC_FW_NR_COUNTERS; ++i) {
		std::string n(sonic::bpf::fw_counter_name(i));
		CHECK(n != "unknown");
		CHECK(n.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string::npos);
		names.insert(n);
	}
	CHECK(names.size() == SONIC_FW_NR_COUNTERS);
	CHECK(sonic::bpf::fw_counter_name(SONIC_FW_DROPPED_BLOCKLIST) == "dropped_blocklist");
	CHECK(sonic::bpf::fw_counter_name(SONIC_FW_LIMIT_DROPPED) == "limit_dropped");
}
