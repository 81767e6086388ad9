// fw's dynamic blocklist: source prefixes fw_xdp drops until their entry
// expires, written by `sonic fw block` and by sonic run's scripts through a
// Blocker.
//
// An entry keeps its expiry (CLOCK_MONOTONIC), when it was added and why,
// and counts the packets it dropped. An expired entry drops nothing; sonic removes
// expired entries whenever it writes or lists the blocklist.
#pragma once

#include "bpf/bpffs.hpp"
#include "net/addr.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::bpf {

struct FwBlockEntry {
	net::Cidr prefix;
	std::optional<std::chrono::seconds> expires_in; // nullopt: never
	int64_t added = 0; // Unix seconds
	std::string reason;
	uint64_t packets = 0; // dropped
};

struct FwBlockChange {
	bool changed = false;
	bool loaded = false;
	FwBlockEntry entry;
};

// Reads a block's target: an address or a prefix. IPv6 prefixes that hold
// the IPv4-mapped range (::/0 up to ::/96) are refused: they would block
// IPv4 too. Throws a usage error (exit 1).
net::Cidr parse_block_target(std::string_view text);
// A reason is at most 63 bytes of printable text. Throws a usage error.
void check_block_reason(std::string_view reason);

// Blocks PREFIX for TTL (nullopt: until unblocked), loading fw first when
// needed. Blocking it again replaces the expiry and reason; changed false
// when neither changes. A full blocklist is a usage error naming the map.
FwBlockChange fw_block(const Bpffs &fs, const net::Cidr &prefix, std::optional<std::chrono::seconds> ttl,
		       const std::string &reason);

struct FwUnblock {
	bool changed = false;
	// A live entry that still covers the prefix after this one is gone.
	std::optional<net::Cidr> still_blocked_by;
};

// Removes the entry of exactly PREFIX.
FwUnblock fw_unblock(const Bpffs &fs, const net::Cidr &prefix);

// The live entries, longest prefixes first; expired ones are removed.
std::vector<FwBlockEntry> fw_blocklist(const Bpffs &fs);

// ---- scripts -------------------------------------------------------------

// What limits a script's blocks (sonic.toml [fw]).
struct BlockPolicy {
	// Never blocked, besides loopback and the admin listener's peers; a
	// block that overlaps one of these is refused.
	std::vector<net::Cidr> never_block;
	unsigned per_minute = 60; // blocks per caller, a minute's worth at once
	std::chrono::seconds default_ttl{600};
};

enum class BlockOutcome { Blocked, NeverBlock, RateLimited, Invalid, Unavailable };

std::string_view block_outcome_name(BlockOutcome outcome);

struct BlockResult {
	BlockOutcome outcome = BlockOutcome::Invalid;
	std::string message; // for the caller and the log
};

// The decisions, without the map: never-block prefixes and peers, and a
// token bucket per caller. Not thread-safe: the Blocker locks around it.
class BlockGate {
public:
	using Clock = std::chrono::steady_clock;

	explicit BlockGate(BlockPolicy policy);
	void set_policy(BlockPolicy policy);
	const BlockPolicy &policy() const { return policy_; }
	// An address that must never be blocked (a peer of the admin listener).
	void protect(const net::IpAddr &addr);
	// Why PREFIX may never be blocked, or nullopt.
	std::optional<std::string> refusal(const net::Cidr &prefix) const;
	// Takes one block from CALLER's budget at NOW; false when it is spent.
	bool take(std::string_view caller, Clock::time_point now);

private:
	struct Bucket {
		double tokens = 0;
		Clock::time_point last;
	};
	BlockPolicy policy_;
	std::vector<net::Cidr> protected_;
	std::map<std::string, Bucket, std::less<>> callers_;
};

// A handle a worker holds to block addresses from scripts: thread-safe,
// rate-limited per caller, logged, and refusing never-block addresses. The
// next packet from a blocked address is dropped in XDP.
class Blocker {
public:
	// Writes one entry; throws sonic::Error (fw not loaded: environment).
	using Write = std::function<void(const net::Cidr &prefix, std::chrono::seconds ttl, const std::string &reason)>;

	Blocker(BlockPolicy policy, Write write);
	// Writes the blocklist pinned under BPFFS (opened per block, so a
	// family loaded or reloaded later is found).
	static std::shared_ptr<Blocker> for_bpffs(const std::string &bpffs, BlockPolicy policy);

	void set_policy(BlockPolicy policy);
	void protect(const net::IpAddr &addr);
	// Blocks ADDR (an address or prefix) for TTL (the policy's default when
	// nullopt) on behalf of CALLER (a script's name).
	BlockResult block(std::string_view caller, std::string_view addr, std::optional<std::chrono::seconds> ttl,
			  std::string_view reason);

private:
	std::mutex mu_;
	BlockGate gate_;
	Write write_;
};

} // namespace sonic::bpf
