// The edge firewall: the userspace half of bpf/fw.bpf.c.
//
// fw_xdp runs at XDP on the interfaces it is attached to (pinned links
// <bpffs>/link/fw_xdp_<netns>_<ifindex>, native where the driver has it,
// generic otherwise). Rules, the blocklist (core/bpf/fw_block.hpp) and the
// flow table (core/bpf/fw_flows.hpp) live in pinned maps: changing them
// never loads a program, and they outlive the command.
#pragma once

#include "bpf/bpffs.hpp"
#include "bpf/fw_rule.hpp"
#include "bpf/pins.hpp"
#include "sonic_abi.h"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::bpf {

inline constexpr std::string_view kFwFamily = "fw";

// ---- interfaces --------------------------------------------------------

struct FwAttachment {
	std::string link;   // the pin's name
	int ifindex = 0;    // 0: the interface is gone (the link is dead)
	std::string dev;    // "" when gone or in another network namespace
	bool this_netns = true;
	std::optional<XdpMode> mode; // what the interface runs fw_xdp in; nullopt: it does not
};

struct FwAttachChange {
	bool changed = false;
	bool loaded = false; // the family was loaded by this call
	XdpMode mode = XdpMode::Native;
	std::string fallback; // why native XDP was not used ("" when it was)
};

// Attaches fw_xdp to DEV: in MODE when given (failing with exit 2 and the
// reason), else native, falling back to generic when the driver has no
// native XDP. Attached already in that mode: changed false; in another mode
// a usage error. A missing interface is a usage error (exit 1).
FwAttachChange fw_attach(const Bpffs &fs, const std::string &dev, std::optional<XdpMode> mode);
// Removes the link, which detaches the program and gives the interface
// back as it was. Whether there was one.
bool fw_detach(const Bpffs &fs, const std::string &dev);
std::vector<FwAttachment> fw_attachments(const Bpffs &fs);

// ---- rules -------------------------------------------------------------

struct FwRule {
	uint32_t slot = 0;
	uint32_t id = 0; // the order rules apply in
	uint32_t ifindex = 0;
	FwRuleSpec spec; // dev "" for every interface; "ifindex N" when unknown here
	uint64_t packets = 0, bytes = 0;
	uint64_t limited = 0, limited_bytes = 0;
};

struct FwRuleChange {
	bool changed = false;
	bool loaded = false;
	FwRule rule;
	bool dev_attached = true; // dev rules: whether fw runs on that interface
};

// Adds SPEC after the rules there are. An identical rule: changed false. A
// rule with the same match and another action is a conflict (exit 1), as is
// a full table.
FwRuleChange fw_add(const Bpffs &fs, const FwRuleSpec &spec);
// Deletes the rule with SPEC's match and action; none there: changed false.
FwRuleChange fw_del(const Bpffs &fs, const FwRuleSpec &spec);
// The rules the kernel holds, in the order they apply, with their hits.
std::vector<FwRule> fw_rules(const Bpffs &fs);

struct FwFlush {
	bool changed = false;
	unsigned rules = 0;
	unsigned blocks = 0;
	unsigned dead_links = 0; // links of interfaces that are gone
};

// Removes every rule, every blocklist entry and the token buckets, and the
// links of interfaces that no longer exist; attachments stay.
FwFlush fw_flush(const Bpffs &fs);

// ---- counters ----------------------------------------------------------

struct FwCounters {
	uint64_t rules = 0;
	uint64_t attachments = 0;
	uint64_t blocklist = 0; // live entries
	uint64_t flows = 0;
	std::array<uint64_t, SONIC_FW_NR_COUNTERS> counter{};
};

std::string_view fw_counter_name(size_t index);

// Throws an environment error (exit 3) when fw is not loaded.
FwCounters fw_counters(const Bpffs &fs);

// What `sonic run` exports on /metrics: drops and limits per rule, and the
// blocklist.
struct FwMetrics {
	struct Rule {
		std::string text;
		FwAction action = FwAction::Drop;
		uint64_t packets = 0; // matched
		uint64_t dropped = 0; // drop: every match; limit: above the rate
	};
	std::vector<Rule> rules;
	uint64_t blocklist_entries = 0;
	uint64_t blocklist_drops = 0;
	uint64_t limit_drops = 0;
	uint64_t rule_drops = 0;
};

// nullopt when fw is not loaded under FS.
std::optional<FwMetrics> fw_metrics(const Bpffs &fs);

// CLOCK_MONOTONIC now, the clock of the program's timestamps and expiries.
uint64_t mono_now_ns();
// A CLOCK_MONOTONIC time in Unix milliseconds.
int64_t mono_ns_to_unix_ms(uint64_t mono_ns);

} // namespace sonic::bpf
