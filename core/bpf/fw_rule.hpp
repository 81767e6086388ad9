// The rules of the fw family as operators write them, and the facts about
// them that need no kernel: parsing, the canonical text, which rules are the
// same, and whether a rule or a block would cut off the SSH session sonic
// runs in.
//
//   RULE  := dev {IFACE | all} ACTION [MATCH]...
//   ACTION := drop | pass | limit RATE [burst N]
//   MATCH := src CIDR | dst CIDR | proto {tcp | udp | icmp} | dport PORTS
//            | tcp-flags syn
//   RATE  := N/s | N/m | N/h            (packets per second, minute, hour)
#pragma once

#include "net/addr.hpp"
#include "net/ports.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::bpf {

enum class FwAction { Drop, Pass, Limit };

std::string_view fw_action_name(FwAction action);

struct FwRate {
	uint32_t packets = 0;
	uint32_t unit_s = 1; // 1, 60 or 3600
	uint32_t burst = 5;
	bool operator==(const FwRate &) const = default;
	// Nanoseconds between two packets at the rate.
	uint64_t interval_ns() const;
};

// "100/s", "20/m", "5/h": a usage error (exit 1) names anything else.
FwRate parse_fw_rate(std::string_view text);
std::string fw_rate_text(const FwRate &rate);

struct FwRuleSpec {
	std::string dev; // "": every interface (dev all)
	FwAction action = FwAction::Drop;
	FwRate rate;     // limit only
	std::optional<net::Cidr> src, dst;
	uint8_t proto = 0; // 0: any; IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP
	std::vector<net::PortRange> dport;
	bool syn = false; // tcp-flags syn: SYN set, ACK clear
	bool operator==(const FwRuleSpec &) const = default;

	// AF_INET or AF_INET6 when src or dst says, else 0 (both).
	int family() const;
	// Same interface and the same match; the action may differ.
	bool same_match(const FwRuleSpec &other) const;
};

// Reads the words after `fw add` or `fw del`. Throws a usage error (exit 1)
// naming what is wrong: a missing dev or action, an unknown or repeated
// word, a bad CIDR, rate, burst, protocol or port list, dport or tcp-flags
// without the protocol they need, or src and dst of different families.
FwRuleSpec parse_fw_rule(const std::vector<std::string> &words);

// The canonical text: "dev eth0 drop src 10.0.0.0/8 proto tcp dport 22".
std::string fw_rule_text(const FwRuleSpec &rule);

std::string_view fw_proto_name(uint8_t proto);

// Whether PREFIX holds ADDR (of the same family).
bool cidr_contains(const net::Cidr &prefix, const net::IpAddr &addr);
// Whether two prefixes share an address: one holds the other.
bool cidrs_overlap(const net::Cidr &a, const net::Cidr &b);

// The SSH session sonic runs in, from $SSH_CONNECTION ("client port server
// port") or $SSH_CLIENT ("client port server_port").
struct SshSession {
	net::IpAddr client;
	std::optional<net::IpAddr> server;
	uint16_t server_port = 0;
};

std::optional<SshSession> ssh_session_from(const char *ssh_connection, const char *ssh_client);
std::optional<SshSession> ssh_session();

// Whether a drop rule could drop the session's packets (a limit rule only
// slows it, a pass rule lets it through).
bool rule_cuts_off(const FwRuleSpec &rule, const SshSession &session);

// Unless FORCE, a usage error (exit 1) when RULE, or a block of PREFIX,
// would cut off SESSION (the SSH session sonic runs in, if any).
void guard_ssh(const FwRuleSpec &rule, const std::optional<SshSession> &session, bool force);
void guard_ssh(const net::Cidr &prefix, const std::optional<SshSession> &session, bool force);

} // namespace sonic::bpf
