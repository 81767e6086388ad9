// Local socket acceleration: the userspace half of bpf/accel.bpf.c.
//
// enable attaches accel_sockops to a cgroup v2 through a pinned bpf_link and
// accel_msg to the SOCKHASH. disable detaches the cgroup and hands its
// accelerated sockets back to the normal stack without losing a byte: they
// are marked draining (no more redirects from or to them) and each leaves the
// SOCKHASH only once its application has read every redirected byte.
#pragma once

#include "bpf/bpffs.hpp"
#include "net/ports.hpp"
#include "sonic_abi.h"
#include "sys/cgroup.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::bpf {

using PortFilter = std::optional<std::vector<net::PortRange>>; // nullopt: all ports

struct AccelCgroup {
	std::string path; // "" when the cgroup directory is gone
	uint64_t cgroup_id = 0;
	uint32_t link_id = 0;
	PortFilter ports;
};

struct ReleaseReport {
	uint64_t marked = 0;        // sockets marked draining
	uint64_t released = 0;      // handed back to the normal stack
	uint64_t pending = 0;       // still holding unread redirected data
	uint64_t pending_bytes = 0; // their queued bytes (0 if the kernel cannot say)
};

struct AccelEnableResult {
	bool changed = false;
	bool loaded = false; // the programs were loaded by this call
	sys::Cgroup cgroup;
	PortFilter ports;
	size_t local_addresses = 0;
};

struct AccelDisableResult {
	bool changed = false;
	bool detached = false;
	sys::Cgroup cgroup;
	ReleaseReport release;
	// Disabling a cgroup whose directory is gone: the ids of the enabled
	// cgroups that no longer exist, all of them, detached and released.
	std::vector<uint64_t> removed_cgroups;
};

struct AccelStatus {
	bool loaded = false;
	bool msg_attached = false;
	std::vector<AccelCgroup> cgroups;
	uint64_t sockets = 0;
	uint64_t draining = 0;
	uint64_t pending_bytes = 0;
	size_t local_addresses = 0;
};

struct AccelCounters {
	uint64_t sockets = 0; // entries in the SOCKHASH now
	std::array<uint64_t, SONIC_ACCEL_NR_COUNTERS> counter{};
};

// snake_case name of a counter, as printed by `sonic stats accel`.
std::string_view accel_counter_name(size_t index);

// Time allowed for readers to drain before a release gives up on a socket.
inline constexpr std::chrono::milliseconds kDefaultReleaseTimeout{5000};

AccelEnableResult accel_enable(const Bpffs &fs, const std::optional<std::string> &cgroup, const PortFilter &ports);
AccelDisableResult accel_disable(const Bpffs &fs, const std::optional<std::string> &cgroup,
				 std::chrono::milliseconds timeout);
AccelStatus accel_status(const Bpffs &fs);
AccelCounters accel_counters(const Bpffs &fs);

// Sockets in a pinned accel_socks of any build (its key size read from the
// kernel), for an unload that cannot run this build's release iterator.
uint64_t accel_pinned_sockets(const Bpffs &fs);

// Detaches every cgroup and releases every socket (used before unload).
// The caller holds the bpffs lock.
ReleaseReport accel_release_all(const Bpffs &fs, std::chrono::milliseconds timeout);

// Port filter <-> bitmap, exposed for tests.
struct sonic_accel_ports ports_bitmap(const std::vector<net::PortRange> &ranges);
std::vector<net::PortRange> ports_from_bitmap(const struct sonic_accel_ports &bitmap);

} // namespace sonic::bpf
