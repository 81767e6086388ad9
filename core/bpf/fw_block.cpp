#include "bpf/fw_block.hpp"

#include "fw.skel.h"
#include "bpf/family.hpp"
#include "bpf/fw.hpp"
#include "bpf/fw_rule.hpp"
#include "bpf/pins.hpp"
#include "config/duration.hpp"
#include "out/error.hpp"
#include "out/log.hpp"
#include "sonic_abi.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <sys/socket.h>

namespace sonic::bpf {

namespace {

const std::string kMapName(SONIC_MAP(fw_bpf, fw_blocklist));

const Family &fw_family() { return builtin_family(kFwFamily); }

Fd open_blocklist(const Bpffs &fs) { return Pins(fs, kFwFamily).map(kMapName); }

struct sonic_fw_lpm_key key_of(const net::Cidr &c)
{
	struct sonic_fw_lpm_key k{};
	k.prefixlen = c.prefix16();
	std::memcpy(k.addr, c.addr.bytes.data(), 16);
	return k;
}

net::Cidr cidr_of(const struct sonic_fw_lpm_key &k) { return net::cidr_of_ipv6_form(k.addr, k.prefixlen); }

bool live(const struct sonic_fw_block &b, uint64_t now) { return b.expires == 0 || b.expires > now; }

FwBlockEntry entry_of(const struct sonic_fw_lpm_key &k, const struct sonic_fw_block &b, uint64_t now)
{
	FwBlockEntry e;
	e.prefix = cidr_of(k);
	if (b.expires)
		e.expires_in = std::chrono::seconds((b.expires - now + 999999999ULL) / 1000000000ULL);
	e.added = static_cast<int64_t>(b.added);
	e.reason.assign(b.reason, strnlen(b.reason, sizeof(b.reason)));
	e.packets = b.packets;
	return e;
}

// Removes the expired entries; returns the live ones.
std::vector<std::pair<struct sonic_fw_lpm_key, struct sonic_fw_block>> prune(int fd, uint64_t now)
{
	std::vector<std::pair<struct sonic_fw_lpm_key, struct sonic_fw_block>> out;
	for (const auto &[kb, vb] : map_entries(fd)) {
		const auto k = from_bytes<struct sonic_fw_lpm_key>(kb);
		const auto v = from_bytes<struct sonic_fw_block>(vb);
		if (live(v, now))
			out.emplace_back(k, v);
		else
			bpf_map_delete_elem(fd, &k); // gone already is as good
	}
	return out;
}

struct sonic_fw_block value_of(const net::Cidr &prefix, std::optional<std::chrono::seconds> ttl,
			       const std::string &reason, uint64_t now)
{
	struct sonic_fw_block v{};
	v.expires = ttl ? now + static_cast<uint64_t>(ttl->count()) * 1000000000ULL : 0;
	v.added = static_cast<uint64_t>(std::time(nullptr));
	v.prefixlen = prefix.prefix16();
	std::memcpy(v.reason, reason.data(), std::min(reason.size(), sizeof(v.reason) - 1));
	return v;
}

// Writes the entry; whether anything an operator sees changed (the reason,
// or the expiry by a second or more).
bool write_block(int fd, const net::Cidr &prefix, std::optional<std::chrono::seconds> ttl, const std::string &reason)
{
	const uint64_t now = mono_now_ns();
	prune(fd, now);
	const auto key = key_of(prefix);
	struct sonic_fw_block v = value_of(prefix, ttl, reason, now);
	struct sonic_fw_block old{};
	const bool existed = bpf_map_lookup_elem(fd, &key, &old) == 0;
	if (existed) {
		// Counts and the time it was first blocked carry over.
		v.added = old.added;
		v.packets = old.packets;
	}
	const auto diff = [](uint64_t a, uint64_t b) { return a > b ? a - b : b - a; };
	const bool same = existed && std::string_view(old.reason) == std::string_view(v.reason) &&
			  (old.expires == 0) == (v.expires == 0) && diff(old.expires, v.expires) < 1000000000ULL;
	if (same)
		return false;
	update_entry(fd, &key, &v, BPF_ANY, kMapName, "block " + net::to_string(prefix));
	return true;
}

const net::Cidr kLoopback4 = net::parse_cidr("127.0.0.0/8");
const net::Cidr kLoopback6 = net::parse_cidr("::1/128");

} // namespace

net::Cidr parse_block_target(std::string_view text)
{
	net::Cidr c = net::parse_cidr(text);
	if (c.addr.family == AF_INET6 && c.prefix <= 96 && cidrs_overlap(c, net::parse_cidr("::ffff:0:0/96")))
		throw usage_error("parse address", "this prefix holds the IPv4-mapped addresses, so it would block IPv4 too",
				  std::string(text))
			.with_hint("block IPv4 with 0.0.0.0/0 and IPv6 with 2000::/3 or narrower prefixes");
	return c;
}

void check_block_reason(std::string_view reason)
{
	if (reason.size() >= SONIC_FW_REASON_LEN)
		throw usage_error("parse reason",
				  "at most " + std::to_string(SONIC_FW_REASON_LEN - 1) + " bytes (this is " +
					  std::to_string(reason.size()) + ")");
	for (char ch : reason)
		if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f)
			throw usage_error("parse reason", "control characters are not allowed");
}

FwBlockChange fw_block(const Bpffs &fs, const net::Cidr &prefix, std::optional<std::chrono::seconds> ttl,
		       const std::string &reason)
{
	check_block_reason(reason);
	FwBlockChange c;
	fs.ensure();
	Fd lock = fs.lock();
	c.loaded = require_family(fs, fw_family());
	Fd fd = open_blocklist(fs);
	c.changed = write_block(fd.get(), prefix, ttl, reason) || c.loaded;
	const uint64_t now = mono_now_ns();
	const auto key = key_of(prefix);
	struct sonic_fw_block v{};
	if (bpf_map_lookup_elem(fd.get(), &key, &v) != 0)
		throw errno_error("read blocklist entry", errno, net::to_string(prefix));
	c.entry = entry_of(key, v, now);
	return c;
}

FwUnblock fw_unblock(const Bpffs &fs, const net::Cidr &prefix)
{
	FwUnblock u;
	if (!fs.present() || !family_maps_usable(fs, fw_family()))
		return u;
	Fd lock = fs.lock();
	Fd fd = open_blocklist(fs);
	const uint64_t now = mono_now_ns();
	prune(fd.get(), now);
	const auto key = key_of(prefix);
	if (bpf_map_delete_elem(fd.get(), &key) == 0)
		u.changed = true;
	else if (errno != ENOENT)
		throw errno_error("unblock", errno, net::to_string(prefix));
	for (const auto &[k, v] : prune(fd.get(), now)) {
		const net::Cidr other = cidr_of(k);
		if (other.prefix16() <= prefix.prefix16() && cidrs_overlap(other, prefix))
			u.still_blocked_by = other;
	}
	return u;
}

std::vector<FwBlockEntry> fw_blocklist(const Bpffs &fs)
{
	std::vector<FwBlockEntry> out;
	if (!fs.present() || !family_maps_usable(fs, fw_family()))
		return out;
	Fd lock = fs.lock();
	Fd fd = open_blocklist(fs);
	const uint64_t now = mono_now_ns();
	for (const auto &[k, v] : prune(fd.get(), now))
		out.push_back(entry_of(k, v, now));
	std::sort(out.begin(), out.end(), [](const FwBlockEntry &a, const FwBlockEntry &b) {
		if (a.prefix.prefix16() != b.prefix.prefix16())
			return a.prefix.prefix16() > b.prefix.prefix16();
		return a.prefix.addr.bytes < b.prefix.addr.bytes;
	});
	return out;
}

// ---- scripts ---------------------------------------------------------------

std::string_view block_outcome_name(BlockOutcome outcome)
{
	switch (outcome) {
	case BlockOutcome::Blocked: return "blocked";
	case BlockOutcome::NeverBlock: return "never_block";
	case BlockOutcome::RateLimited: return "rate_limited";
	case BlockOutcome::Invalid: return "invalid";
	case BlockOutcome::Unavailable: return "unavailable";
	}
	return "unknown";
}

BlockGate::BlockGate(BlockPolicy policy) : policy_(std::move(policy)) {}

void BlockGate::set_policy(BlockPolicy policy)
{
	policy_ = std::move(policy);
}

void BlockGate::protect(const net::IpAddr &addr)
{
	net::Cidr c{addr, addr.family == AF_INET ? 32u : 128u};
	if (std::find(protected_.begin(), protected_.end(), c) == protected_.end())
		protected_.push_back(c);
}

std::optional<std::string> BlockGate::refusal(const net::Cidr &prefix) const
{
	if (cidrs_overlap(prefix, kLoopback4) || cidrs_overlap(prefix, kLoopback6))
		return "it holds loopback addresses";
	for (const net::Cidr &c : policy_.never_block)
		if (cidrs_overlap(prefix, c))
			return "it overlaps " + net::to_string(c) + " of [fw] never_block";
	for (const net::Cidr &c : protected_)
		if (cidrs_overlap(prefix, c))
			return "it holds " + net::to_string(c.addr) + ", a peer of the admin listener";
	return std::nullopt;
}

bool BlockGate::take(std::string_view caller, Clock::time_point now)
{
	const double capacity = policy_.per_minute;
	auto it = callers_.find(caller);
	if (it == callers_.end()) {
		// Callers whose budget is whole again carry no state worth keeping.
		if (callers_.size() >= 1024)
			std::erase_if(callers_, [&](const auto &kv) {
				return kv.second.tokens +
					       std::chrono::duration<double>(now - kv.second.last).count() * capacity / 60 >=
				       capacity;
			});
		it = callers_.emplace(std::string(caller), Bucket{capacity, now}).first;
	}
	Bucket &b = it->second;
	const double elapsed = std::chrono::duration<double>(now - b.last).count();
	b.tokens = std::min(capacity, b.tokens + elapsed * capacity / 60);
	b.last = now;
	if (b.tokens < 1)
		return false;
	b.tokens -= 1;
	return true;
}

Blocker::Blocker(BlockPolicy policy, Write write) : gate_(std::move(policy)), write_(std::move(write)) {}

std::shared_ptr<Blocker> Blocker::for_bpffs(const std::string &bpffs, BlockPolicy policy)
{
	return std::make_shared<Blocker>(std::move(policy), [bpffs](const net::Cidr &prefix, std::chrono::seconds ttl,
								    const std::string &reason) {
		const Bpffs fs(bpffs);
		if (!fs.present() || !family_maps_usable(fs, fw_family()))
			throw env_error("block " + net::to_string(prefix), "fw is not loaded", bpffs)
				.with_hint("run `sonic prog load fw` and attach it with `sonic fw attach dev IFACE`");
		// No bpffs lock: a worker must not wait for a CLI command, and one
		// map update is atomic on its own.
		write_block(open_blocklist(fs).get(), prefix, ttl, reason);
	});
}

void Blocker::set_policy(BlockPolicy policy)
{
	std::lock_guard<std::mutex> g(mu_);
	gate_.set_policy(std::move(policy));
}

void Blocker::protect(const net::IpAddr &addr)
{
	std::lock_guard<std::mutex> g(mu_);
	gate_.protect(addr);
}

BlockResult Blocker::block(std::string_view caller, std::string_view addr, std::optional<std::chrono::seconds> ttl,
			   std::string_view reason)
{
	const std::string who = "fw: " + std::string(caller) + " blocking " + std::string(addr);
	BlockResult r;
	net::Cidr prefix;
	try {
		prefix = parse_block_target(addr);
		check_block_reason(reason);
		if (ttl && ttl->count() <= 0)
			throw usage_error("block", "the ttl must be at least one second");
	} catch (const Error &e) {
		r = {BlockOutcome::Invalid, e.what()};
		log::warn(who + ": refused: " + r.message);
		return r;
	}
	std::lock_guard<std::mutex> g(mu_);
	const std::chrono::seconds for_ = ttl.value_or(gate_.policy().default_ttl);
	if (auto why = gate_.refusal(prefix)) {
		r = {BlockOutcome::NeverBlock, "never blocked: " + *why};
		log::warn(who + ": refused: " + r.message);
		return r;
	}
	if (!gate_.take(caller, BlockGate::Clock::now())) {
		r = {BlockOutcome::RateLimited,
		     "more than " + std::to_string(gate_.policy().per_minute) + " blocks a minute from " + std::string(caller)};
		log::warn(who + ": refused: " + r.message);
		return r;
	}
	try {
		write_(prefix, for_, std::string(reason));
	} catch (const Error &e) {
		r = {BlockOutcome::Unavailable, e.what()};
		log::error(who + ": " + r.message);
		return r;
	}
	r = {BlockOutcome::Blocked, "blocked " + net::to_string(prefix) + " for " + config::format_duration(for_)};
	log::info("fw: " + std::string(caller) + " " + r.message + (reason.empty() ? "" : " (" + std::string(reason) + ")"));
	return r;
}

} // namespace sonic::bpf
