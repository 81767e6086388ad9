// Local socket acceleration: the userspace half of bpf/accel.bpf.c.
//
// enable attaches accel_sockops to a cgroup v2 through a pinned bpf_link and
// accel_msg to the SOCKHASH. disable detaches the cgroup and hands its
// accelerated sockets back to the normal stack without losing a byte: they
// are marked draining (no more redirects from or to them) and each leaves the
// SOCKHASH only once its application has read every redirected byte.
//
// The release runs its passes over the SOCKHASH through the sockmap iterator
// (accel_release) where the kernel runs tracing programs, else by walking the
// SOCKHASH's keys from userspace and running accel_release_one for each
// (AccelReleasePath::Walk). Both run the same per-socket step.
#pragma once

#include "bpf/bpffs.hpp"
#include "bpf/fd.hpp"
#include "net/ports.hpp"
#include "sonic_abi.h"
#include "sys/cgroup.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <sys/socket.h>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::bpf {

using PortFilter = std::optional<std::vector<net::PortRange>>; // nullopt: all ports

// What an attachment accelerates: every connection between local sockets of
// the cgroup, or only the legs of a sonic proxy (client to `sonic run`, and
// `sonic run` to its upstreams).
enum class AccelScope { All, Proxy };
std::string_view accel_scope_name(AccelScope scope);
std::optional<AccelScope> parse_accel_scope(std::string_view text);

struct AccelCgroup {
	std::string path; // "" when the cgroup directory is gone
	uint64_t cgroup_id = 0;
	uint32_t link_id = 0;
	PortFilter ports;
	AccelScope scope = AccelScope::All;
};

// A listener a running proxy recorded for scope proxy.
struct AccelProxyListener {
	std::string address; // "127.0.0.1:8080", "[::]:8080"
	uint64_t netns = 0;
	uint32_t pid = 0;
	bool alive = false; // the recording process still runs (true when its pid
			    // namespace is not this one: it cannot be told)
};

enum class AccelReleasePath { Iterator, Walk };
std::string_view accel_release_path_name(AccelReleasePath path);

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
	AccelScope scope = AccelScope::All;
	size_t local_addresses = 0;
	AccelReleasePath release_path = AccelReleasePath::Iterator;
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
	AccelReleasePath release_path = AccelReleasePath::Iterator;
	bool msg_attached = false;
	std::vector<AccelCgroup> cgroups;
	uint64_t sockets = 0;
	uint64_t draining = 0;
	uint64_t pending_bytes = 0;
	size_t local_addresses = 0;
	std::vector<AccelProxyListener> proxy_listeners;
};

struct AccelCounters {
	uint64_t sockets = 0; // entries in the SOCKHASH now
	std::array<uint64_t, SONIC_ACCEL_NR_COUNTERS> counter{};
};

// snake_case name of a counter, as printed by `sonic stats accel`.
std::string_view accel_counter_name(size_t index);

// Time allowed for readers to drain before a release gives up on a socket.
inline constexpr std::chrono::milliseconds kDefaultReleaseTimeout{5000};

AccelEnableResult accel_enable(const Bpffs &fs, const std::optional<std::string> &cgroup, const PortFilter &ports,
			       AccelScope scope = AccelScope::All);
AccelDisableResult accel_disable(const Bpffs &fs, const std::optional<std::string> &cgroup,
				 std::chrono::milliseconds timeout);
AccelStatus accel_status(const Bpffs &fs);
AccelCounters accel_counters(const Bpffs &fs);

// Sockets in a pinned accel_socks of any build (its key size read from the
// kernel), for an unload that cannot run this build's release passes.
uint64_t accel_pinned_sockets(const Bpffs &fs);

// Detaches every cgroup and releases every socket (used before unload).
// The caller holds the bpffs lock.
ReleaseReport accel_release_all(const Bpffs &fs, std::chrono::milliseconds timeout);

// The proxy's handle on a loaded accel family. `sonic run` records its
// listening endpoints, so that under scope proxy connections to them count as
// proxy legs (its upstream sockets are known by their mark); whether anything
// is accelerated is up to `sonic accel enable`. Workers ask it whether a
// tunnel's sockets are accelerated: those are copied, not spliced, because
// data the sk_msg program moves into a socket never reaches the splice
// family's sk_skb program.
class AccelProxy {
public:
	// Null when the accel family is not loaded under FS (or cannot be
	// opened); UNAVAILABLE then says why, for the log.
	static std::unique_ptr<AccelProxy> open(const Bpffs &fs, std::string &unavailable);
	~AccelProxy(); // forgets what it recorded

	// Records exactly these listening addresses (what getsockname said of
	// each listener), dropping the ones recorded before and not among them.
	void record(const std::vector<struct sockaddr_storage> &listening);

	// Whether the socket is in accel_socks (from any thread).
	bool accelerated(int sock_fd) const;

	// Whether the family under FS is no longer the one opened (unloaded, or
	// unloaded and loaded again): the proxy then opens it anew.
	bool stale(const Bpffs &fs) const;

	AccelProxy(const AccelProxy &) = delete;
	AccelProxy &operator=(const AccelProxy &) = delete;

private:
	AccelProxy(Fd map, Fd sk) : map_(std::move(map)), sk_(std::move(sk)) {}
	Fd map_; // accel_proxy_listen
	Fd sk_;  // accel_sk
	std::vector<struct sonic_accel_endpoint> mine_;
};

// Port filter <-> bitmap, exposed for tests.
struct sonic_accel_ports ports_bitmap(const std::vector<net::PortRange> &ranges);
std::vector<net::PortRange> ports_from_bitmap(const struct sonic_accel_ports &bitmap);

} // namespace sonic::bpf
