#include "bpf/fw_rule.hpp"

#include "out/error.hpp"
#include "sonic_abi.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <map>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace sonic::bpf {

namespace {

constexpr uint32_t kMaxBurst = 1000000;

uint32_t parse_count(std::string_view text, uint32_t max, const std::string &op, const std::string &what)
{
	uint32_t v = 0;
	auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
	if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || v < 1 || v > max)
		throw usage_error(op, "'" + std::string(text) + "' is not " + what + " from 1 to " + std::to_string(max));
	return v;
}

uint8_t parse_proto(const std::string &text)
{
	if (text == "tcp")
		return IPPROTO_TCP;
	if (text == "udp")
		return IPPROTO_UDP;
	if (text == "icmp")
		return IPPROTO_ICMP;
	throw usage_error("parse protocol", "'" + text + "' is not tcp, udp or icmp");
}

bool bit_set(const net::Addr16 &a, unsigned bit) { return a[bit / 8] & (0x80 >> (bit % 8)); }

// Whether the first BITS bits (IPv6 form) of A and B agree.
bool same_prefix(const net::Addr16 &a, const net::Addr16 &b, unsigned bits)
{
	for (unsigned i = 0; i < bits; ++i)
		if (bit_set(a, i) != bit_set(b, i))
			return false;
	return true;
}

// Keywords that take one value, and the words that stand alone.
const char *const kValued[] = {"dev", "limit", "burst", "src", "dst", "proto", "dport", "tcp-flags"};

bool valued(const std::string &w)
{
	for (const char *k : kValued)
		if (w == k)
			return true;
	return false;
}

} // namespace

std::string_view fw_action_name(FwAction action)
{
	switch (action) {
	case FwAction::Drop: return "drop";
	case FwAction::Pass: return "pass";
	case FwAction::Limit: return "limit";
	}
	return "unknown";
}

uint64_t FwRate::interval_ns() const
{
	return packets ? uint64_t{unit_s} * 1000000000ULL / packets : 0;
}

FwRate parse_fw_rate(std::string_view text)
{
	const size_t slash = text.find('/');
	if (slash == std::string_view::npos)
		throw usage_error("parse rate", "'" + std::string(text) + "' is not a rate such as 100/s, 20/m or 5/h");
	const std::string_view unit = text.substr(slash + 1);
	FwRate r;
	if (unit == "s")
		r.unit_s = 1;
	else if (unit == "m")
		r.unit_s = 60;
	else if (unit == "h")
		r.unit_s = 3600;
	else
		throw usage_error("parse rate", "'" + std::string(text) + "': the unit is /s, /m or /h");
	r.packets = parse_count(text.substr(0, slash), 1000000000, "parse rate", "a number of packets");
	if (r.interval_ns() == 0)
		throw usage_error("parse rate", "'" + std::string(text) + "' is more than one packet per nanosecond");
	return r;
}

std::string fw_rate_text(const FwRate &rate)
{
	return std::to_string(rate.packets) + (rate.unit_s == 1 ? "/s" : rate.unit_s == 60 ? "/m" : "/h");
}

int FwRuleSpec::family() const
{
	if (src)
		return src->addr.family;
	if (dst)
		return dst->addr.family;
	return 0;
}

bool FwRuleSpec::same_match(const FwRuleSpec &o) const
{
	return dev == o.dev && src == o.src && dst == o.dst && proto == o.proto && dport == o.dport && syn == o.syn;
}

std::string_view fw_proto_name(uint8_t proto)
{
	switch (proto) {
	case IPPROTO_TCP: return "tcp";
	case IPPROTO_UDP: return "udp";
	case IPPROTO_ICMP: return "icmp";
	case 58: return "icmpv6";
	case 0: return "any";
	}
	return "other";
}

FwRuleSpec parse_fw_rule(const std::vector<std::string> &words)
{
	FwRuleSpec r;
	std::map<std::string, std::string> values;
	std::optional<std::string> action;
	for (size_t i = 0; i < words.size(); ++i) {
		const std::string &w = words[i];
		if (w == "drop" || w == "pass") {
			if (action)
				throw usage_error("parse rule", "two actions: '" + *action + "' and '" + w + "'").with_usage();
			action = w;
			continue;
		}
		if (!valued(w))
			throw usage_error("parse rule", "unexpected argument '" + w + "'").with_usage();
		if (i + 1 >= words.size())
			throw usage_error("parse rule", "'" + w + "' needs a value").with_usage();
		if (values.count(w))
			throw usage_error("parse rule", "'" + w + "' given twice").with_usage();
		if (w == "limit") {
			if (action)
				throw usage_error("parse rule", "two actions: '" + *action + "' and 'limit'").with_usage();
			action = w;
		}
		values[w] = words[++i];
	}
	auto get = [&](const char *k) -> std::optional<std::string> {
		auto it = values.find(k);
		return it == values.end() ? std::nullopt : std::optional<std::string>(it->second);
	};

	auto dev = get("dev");
	if (!dev)
		throw usage_error("parse rule", "a rule needs dev IFACE or dev all").with_usage();
	if (*dev != "all") {
		if (dev->empty() || dev->size() >= IF_NAMESIZE || dev->find('/') != std::string::npos)
			throw usage_error("find interface", "not a valid interface name", *dev);
		r.dev = *dev;
	}
	if (!action)
		throw usage_error("parse rule", "a rule needs an action: drop, pass or limit RATE").with_usage();
	r.action = *action == "drop" ? FwAction::Drop : *action == "pass" ? FwAction::Pass : FwAction::Limit;
	if (r.action == FwAction::Limit) {
		r.rate = parse_fw_rate(*get("limit"));
		if (auto burst = get("burst"))
			r.rate.burst = parse_count(*burst, kMaxBurst, "parse burst", "a number of packets");
		if (r.rate.interval_ns() * (r.rate.burst - 1) / r.rate.burst > uint64_t{1} << 62)
			throw usage_error("parse burst", "the burst is too large for the rate");
	} else if (get("burst")) {
		throw usage_error("parse rule", "burst goes with limit RATE only");
	}
	if (auto src = get("src"))
		r.src = net::parse_cidr(*src);
	if (auto dst = get("dst"))
		r.dst = net::parse_cidr(*dst);
	if (r.src && r.dst && r.src->addr.family != r.dst->addr.family)
		throw usage_error("parse rule", "src " + *get("src") + " and dst " + *get("dst") + " are of different families");
	if (auto proto = get("proto"))
		r.proto = parse_proto(*proto);
	if (auto dport = get("dport")) {
		if (r.proto != IPPROTO_TCP && r.proto != IPPROTO_UDP)
			throw usage_error("parse rule", "dport needs proto tcp or proto udp");
		r.dport = net::parse_port_list(*dport);
		if (r.dport.size() > SONIC_FW_MAX_RANGES)
			throw usage_error("parse ports",
					  "at most " + std::to_string(SONIC_FW_MAX_RANGES) + " ports or ranges per rule", *dport);
	}
	if (auto flags = get("tcp-flags")) {
		if (*flags != "syn")
			throw usage_error("parse tcp flags", "'" + *flags + "' is not syn (the only flag matched)");
		if (r.proto != IPPROTO_TCP)
			throw usage_error("parse rule", "tcp-flags needs proto tcp");
		r.syn = true;
	}
	return r;
}

std::string fw_rule_text(const FwRuleSpec &r)
{
	std::string s = "dev " + (r.dev.empty() ? std::string("all") : r.dev) + " " + std::string(fw_action_name(r.action));
	if (r.action == FwAction::Limit)
		s += " " + fw_rate_text(r.rate) + " burst " + std::to_string(r.rate.burst);
	if (r.src)
		s += " src " + net::to_string(*r.src);
	if (r.dst)
		s += " dst " + net::to_string(*r.dst);
	if (r.proto)
		s += " proto " + std::string(fw_proto_name(r.proto));
	if (!r.dport.empty())
		s += " dport " + net::format_port_list(r.dport);
	if (r.syn)
		s += " tcp-flags syn";
	return s;
}

bool cidr_contains(const net::Cidr &prefix, const net::IpAddr &addr)
{
	return prefix.addr.family == addr.family && same_prefix(prefix.addr.bytes, addr.bytes, prefix.prefix16());
}

bool cidrs_overlap(const net::Cidr &a, const net::Cidr &b)
{
	return a.addr.family == b.addr.family &&
	       same_prefix(a.addr.bytes, b.addr.bytes, std::min(a.prefix16(), b.prefix16()));
}

std::optional<SshSession> ssh_session_from(const char *ssh_connection, const char *ssh_client)
{
	auto words = [](const char *s) {
		std::vector<std::string> out;
		std::string cur;
		for (const char *p = s; p && *p; ++p) {
			if (*p == ' ') {
				if (!cur.empty())
					out.push_back(cur);
				cur.clear();
			} else {
				cur += *p;
			}
		}
		if (!cur.empty())
			out.push_back(cur);
		return out;
	};
	auto ip = [](const std::string &text) -> std::optional<net::IpAddr> {
		try {
			// "::ffff:10.0.0.1" is how a dual-stack sshd names an IPv4 client.
			return net::addr_of_ipv6_form(net::parse_ip(text).bytes.data());
		} catch (const Error &) {
			return std::nullopt;
		}
	};
	auto port = [](const std::string &text) -> uint16_t {
		unsigned v = 0;
		auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
		return ec == std::errc() && p == text.data() + text.size() && v <= 65535 ? static_cast<uint16_t>(v) : 0;
	};
	auto conn = words(ssh_connection);
	if (conn.size() == 4) {
		auto client = ip(conn[0]);
		if (client) {
			SshSession s{*client, ip(conn[2]), port(conn[3])};
			return s;
		}
	}
	auto cl = words(ssh_client);
	if (cl.size() == 3) {
		auto client = ip(cl[0]);
		if (client)
			return SshSession{*client, std::nullopt, port(cl[2])};
	}
	return std::nullopt;
}

std::optional<SshSession> ssh_session()
{
	return ssh_session_from(std::getenv("SSH_CONNECTION"), std::getenv("SSH_CLIENT"));
}

bool rule_cuts_off(const FwRuleSpec &r, const SshSession &s)
{
	if (r.action != FwAction::Drop)
		return false;
	if (r.src && !cidr_contains(*r.src, s.client))
		return false;
	if (r.dst && s.server && !cidr_contains(*r.dst, *s.server))
		return false;
	if (r.dst && r.dst->addr.family != s.client.family)
		return false;
	if (r.proto && r.proto != IPPROTO_TCP)
		return false;
	if (!r.dport.empty() && s.server_port && !net::port_in(r.dport, s.server_port))
		return false;
	return true;
}

namespace {

[[noreturn]] void refuse_ssh(const std::string &what, const SshSession &s)
{
	throw usage_error(what, "this would cut off the SSH session sonic runs in (from " + net::to_string(s.client) + ")")
		.with_hint("pass --force if that is what you want");
}

} // namespace

void guard_ssh(const FwRuleSpec &rule, const std::optional<SshSession> &session, bool force)
{
	if (!force && session && rule_cuts_off(rule, *session))
		refuse_ssh("fw add", *session);
}

void guard_ssh(const net::Cidr &prefix, const std::optional<SshSession> &session, bool force)
{
	if (!force && session && cidr_contains(prefix, session->client))
		refuse_ssh("fw block", *session);
}

} // namespace sonic::bpf
