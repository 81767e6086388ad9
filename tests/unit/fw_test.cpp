// fw without a kernel: the rule parser and its canonical text, the SSH
// guard, what scripts may block (never-block list, per-caller rate), the
// flow table's sorting and rates, durations and map sizes.
#include "bpf/family.hpp"
#include "bpf/fw_block.hpp"
#include "bpf/fw_flows.hpp"
#include "bpf/fw_rule.hpp"
#include "config/config.hpp"
#include "config/duration.hpp"
#include "out/error.hpp"
#include "proxy/metrics.hpp"

#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <sstream>
#include <sys/socket.h>

using namespace sonic;
using namespace sonic::bpf;

namespace {

std::vector<std::string> words(const std::string &s)
{
	std::istringstream in(s);
	std::vector<std::string> out;
	for (std::string w; in >> w;)
		out.push_back(w);
	return out;
}

FwRuleSpec rule(const std::string &s) { return parse_fw_rule(words(s)); }

// The message of the usage error parsing S throws, or "" when it parses.
std::string rule_error(const std::string &s)
{
	try {
		rule(s);
	} catch (const Error &e) {
		CHECK(e.kind() == ErrorKind::Usage);
		return e.what();
	}
	return "";
}

bool has(const std::string &text, const std::string &part) { return text.find(part) != std::string::npos; }

} // namespace

TEST_CASE("fw rules parse in any order and print canonically", "[fw]")
{
	FwRuleSpec r = rule("dev eth0 drop src 10.0.0.0/8 proto tcp dport 22,80-81");
	CHECK(r.dev == "eth0");
	CHECK(r.action == FwAction::Drop);
	REQUIRE(r.src);
	CHECK(net::to_string(*r.src) == "10.0.0.0/8");
	CHECK_FALSE(r.dst);
	CHECK(r.proto == IPPROTO_TCP);
	CHECK(r.dport == std::vector<net::PortRange>{{22, 22}, {80, 81}});
	CHECK(r.family() == AF_INET);
	CHECK(fw_rule_text(r) == "dev eth0 drop src 10.0.0.0/8 proto tcp dport 22,80-81");

	// Keywords in another order mean the same rule.
	CHECK(rule("proto tcp dport 80-81,22 src 10.0.0.0/8 drop dev eth0") == r);

	FwRuleSpec l = rule("dev all limit 100/s burst 10 proto tcp tcp-flags syn dst 2001:db8::/32");
	CHECK(l.dev.empty());
	CHECK(l.action == FwAction::Limit);
	CHECK(l.rate == FwRate{100, 1, 10});
	CHECK(l.rate.interval_ns() == 10000000);
	CHECK(l.syn);
	CHECK(l.family() == AF_INET6);
	CHECK(fw_rule_text(l) == "dev all limit 100/s burst 10 dst 2001:db8::/32 proto tcp tcp-flags syn");
	CHECK(rule(fw_rule_text(l)) == l);

	CHECK(rule("dev all pass").family() == 0);
	CHECK(rule("dev all limit 20/m").rate == FwRate{20, 60, 5}); // nft's default burst
	CHECK(rule("dev all limit 3/h").rate.interval_ns() == 1200000000000ULL);
	CHECK(rule("dev lo drop proto icmp").proto == IPPROTO_ICMP);
}

TEST_CASE("fw rule matches are compared without the action", "[fw]")
{
	CHECK(rule("dev all drop src 10.0.0.0/8").same_match(rule("dev all pass src 10.0.0.0/8")));
	CHECK_FALSE(rule("dev all drop src 10.0.0.0/8").same_match(rule("dev eth0 drop src 10.0.0.0/8")));
	CHECK_FALSE(rule("dev all drop src 10.0.0.0/8").same_match(rule("dev all drop src 10.0.0.0/16")));
	CHECK_FALSE(rule("dev all drop proto tcp").same_match(rule("dev all drop proto tcp tcp-flags syn")));
}

TEST_CASE("bad fw rules name what is wrong", "[fw]")
{
	CHECK(has(rule_error("drop src 10.0.0.0/8"), "needs dev IFACE or dev all"));
	CHECK(has(rule_error("dev eth0 src 10.0.0.0/8"), "needs an action"));
	CHECK(has(rule_error("dev eth0 drop pass"), "two actions"));
	CHECK(has(rule_error("dev eth0 drop limit 5/s"), "two actions"));
	CHECK(has(rule_error("dev eth0 drop frob 1"), "unexpected argument 'frob'"));
	CHECK(has(rule_error("dev eth0 drop src"), "'src' needs a value"));
	CHECK(has(rule_error("dev eth0 drop src 1.2.3.4 src 1.2.3.5"), "'src' given twice"));
	CHECK(has(rule_error("dev eth0 drop src 10.0.0.1/8"), "bits set beyond the prefix"));
	CHECK(has(rule_error("dev eth0 drop src 10.0.0.300"), "not an IPv4 or IPv6 address"));
	CHECK(has(rule_error("dev eth0 drop src 10.0.0.0/8 dst 2001:db8::1"), "different families"));
	CHECK(has(rule_error("dev eth0 limit 100"), "not a rate"));
	CHECK(has(rule_error("dev eth0 limit 100/d"), "the unit is /s, /m or /h"));
	CHECK(has(rule_error("dev eth0 limit 0/s"), "'0' is not a number of packets"));
	CHECK(has(rule_error("dev eth0 limit x/s"), "'x' is not a number of packets"));
	CHECK(has(rule_error("dev eth0 limit 5/s burst 0"), "'0' is not a number of packets"));
	CHECK(has(rule_error("dev eth0 drop burst 5"), "burst goes with limit"));
	CHECK(has(rule_error("dev eth0 drop proto sctp"), "not tcp, udp or icmp"));
	CHECK(has(rule_error("dev eth0 drop dport 80"), "dport needs proto tcp or proto udp"));
	CHECK(has(rule_error("dev eth0 drop proto icmp dport 80"), "dport needs proto"));
	CHECK(has(rule_error("dev eth0 drop proto tcp dport 0"), "outside 1-65535"));
	CHECK(has(rule_error("dev eth0 drop proto tcp dport 1,3,5,7,9,11,13,15,17,19,21,23,25,27,29,31,33"),
		  "at most 16"));
	CHECK(has(rule_error("dev eth0 drop tcp-flags syn"), "tcp-flags needs proto tcp"));
	CHECK(has(rule_error("dev eth0 drop proto tcp tcp-flags fin"), "'fin' is not syn"));
	CHECK(has(rule_error("dev a/b drop"), "not a valid interface name"));
	CHECK(has(rule_error("dev abcdefghijklmnopq drop"), "not a valid interface name"));
}

TEST_CASE("prefixes contain addresses of their own family", "[fw]")
{
	CHECK(cidr_contains(net::parse_cidr("10.0.0.0/8"), net::parse_ip("10.200.0.1")));
	CHECK_FALSE(cidr_contains(net::parse_cidr("10.0.0.0/8"), net::parse_ip("11.0.0.1")));
	CHECK(cidr_contains(net::parse_cidr("0.0.0.0/0"), net::parse_ip("192.0.2.1")));
	CHECK_FALSE(cidr_contains(net::parse_cidr("::/0"), net::parse_ip("192.0.2.1")));
	CHECK(cidr_contains(net::parse_cidr("2001:db8::/32"), net::parse_ip("2001:db8:1::5")));
	CHECK(cidrs_overlap(net::parse_cidr("10.0.0.0/8"), net::parse_cidr("10.1.0.0/16")));
	CHECK(cidrs_overlap(net::parse_cidr("10.1.0.0/16"), net::parse_cidr("10.0.0.0/8")));
	CHECK_FALSE(cidrs_overlap(net::parse_cidr("10.1.0.0/16"), net::parse_cidr("10.2.0.0/16")));
}

TEST_CASE("the SSH session is guarded against drops and blocks", "[fw]")
{
	auto s = ssh_session_from("192.0.2.10 51000 198.51.100.1 22", nullptr);
	REQUIRE(s);
	CHECK(net::to_string(s->client) == "192.0.2.10");
	CHECK(s->server_port == 22);
	auto mapped = ssh_session_from("::ffff:192.0.2.10 51000 ::ffff:198.51.100.1 22", nullptr);
	REQUIRE(mapped);
	CHECK(mapped->client.family == AF_INET);
	auto old = ssh_session_from(nullptr, "2001:db8::7 51000 2222");
	REQUIRE(old);
	CHECK(old->client.family == AF_INET6);
	CHECK(old->server_port == 2222);
	CHECK_FALSE(ssh_session_from("", ""));
	CHECK_FALSE(ssh_session_from("garbage", "also garbage"));

	CHECK(rule_cuts_off(rule("dev all drop src 192.0.2.0/24"), *s));
	CHECK(rule_cuts_off(rule("dev all drop"), *s));
	CHECK(rule_cuts_off(rule("dev all drop proto tcp dport 22"), *s));
	CHECK_FALSE(rule_cuts_off(rule("dev all drop proto tcp dport 80"), *s));
	CHECK_FALSE(rule_cuts_off(rule("dev all drop proto udp"), *s));
	CHECK_FALSE(rule_cuts_off(rule("dev all drop src 203.0.113.0/24"), *s));
	CHECK_FALSE(rule_cuts_off(rule("dev all drop dst 203.0.113.0/24"), *s));
	CHECK_FALSE(rule_cuts_off(rule("dev all drop src 2001:db8::/32"), *s));
	CHECK_FALSE(rule_cuts_off(rule("dev all pass src 192.0.2.0/24"), *s));
	CHECK_FALSE(rule_cuts_off(rule("dev all limit 5/s src 192.0.2.0/24"), *s));

	CHECK_THROWS_WITH(guard_ssh(rule("dev all drop src 192.0.2.0/24"), s, false),
			  Catch::Contains("cut off the SSH session") && Catch::Contains("192.0.2.10"));
	CHECK_NOTHROW(guard_ssh(rule("dev all drop src 192.0.2.0/24"), s, true));
	CHECK_NOTHROW(guard_ssh(rule("dev all drop src 192.0.2.0/24"), std::nullopt, false));
	CHECK_THROWS_WITH(guard_ssh(net::parse_cidr("192.0.2.0/28"), s, false), Catch::Contains("SSH session"));
	CHECK_NOTHROW(guard_ssh(net::parse_cidr("192.0.2.0/28"), s, true));
	CHECK_NOTHROW(guard_ssh(net::parse_cidr("192.0.2.128/25"), s, false));
}

TEST_CASE("block targets and reasons are checked", "[fw]")
{
	CHECK(net::to_string(parse_block_target("192.0.2.7")) == "192.0.2.7/32");
	CHECK(net::to_string(parse_block_target("2001:db8::/48")) == "2001:db8::/48");
	CHECK_THROWS_WITH(parse_block_target("::/0"), Catch::Contains("block IPv4 too"));
	CHECK_THROWS_WITH(parse_block_target("::/64"), Catch::Contains("block IPv4 too"));
	CHECK_NOTHROW(parse_block_target("::ffff:0:0/97"));
	CHECK_THROWS_AS(parse_block_target("not-an-address"), Error);
	CHECK_NOTHROW(check_block_reason(std::string(63, 'x')));
	CHECK_THROWS_WITH(check_block_reason(std::string(64, 'x')), Catch::Contains("at most 63 bytes"));
	CHECK_THROWS_WITH(check_block_reason("a\nb"), Catch::Contains("control characters"));
}

TEST_CASE("scripts never block loopback, never_block prefixes or admin peers", "[fw]")
{
	BlockPolicy policy;
	policy.never_block = {net::parse_cidr("10.0.0.0/8")};
	BlockGate gate(policy);
	CHECK(gate.refusal(net::parse_cidr("127.0.0.1")));
	CHECK(gate.refusal(net::parse_cidr("::1")));
	CHECK(gate.refusal(net::parse_cidr("0.0.0.0/0"))); // holds loopback
	CHECK(gate.refusal(net::parse_cidr("10.2.3.4")));
	CHECK(gate.refusal(net::parse_cidr("10.0.0.0/7"))); // holds 10.0.0.0/8
	CHECK_FALSE(gate.refusal(net::parse_cidr("192.0.2.7")));
	gate.protect(net::parse_ip("192.0.2.7"));
	REQUIRE(gate.refusal(net::parse_cidr("192.0.2.0/24")));
	CHECK(has(*gate.refusal(net::parse_cidr("192.0.2.0/24")), "admin listener"));
	CHECK_FALSE(gate.refusal(net::parse_cidr("192.0.2.8")));
	CHECK_FALSE(gate.refusal(net::parse_cidr("2001:db8::1")));
}

TEST_CASE("each caller blocks at most its rate, refilled over a minute", "[fw]")
{
	BlockPolicy policy;
	policy.per_minute = 6;
	BlockGate gate(policy);
	const auto t0 = BlockGate::Clock::time_point{} + std::chrono::hours(1);
	for (int i = 0; i < 6; ++i)
		CHECK(gate.take("a.js", t0));
	CHECK_FALSE(gate.take("a.js", t0));
	CHECK(gate.take("b.js", t0)); // its own budget
	CHECK_FALSE(gate.take("a.js", t0 + std::chrono::seconds(9)));
	CHECK(gate.take("a.js", t0 + std::chrono::seconds(10))); // one every 10 s
	CHECK_FALSE(gate.take("a.js", t0 + std::chrono::seconds(11)));
	int refilled = 0;
	while (gate.take("a.js", t0 + std::chrono::hours(1)))
		++refilled;
	CHECK(refilled == 6); // never more than a minute's worth
}

TEST_CASE("the Blocker writes, refuses and logs", "[fw]")
{
	struct Write {
		std::string prefix, reason;
		long long ttl = 0;
	};
	std::vector<Write> written;
	bool fail = false;
	BlockPolicy policy;
	policy.per_minute = 2;
	policy.default_ttl = std::chrono::seconds(300);
	Blocker b(policy, [&](const net::Cidr &c, std::chrono::seconds ttl, const std::string &reason) {
		if (fail)
			throw env_error("block", "fw is not loaded");
		written.push_back({net::to_string(c), reason, ttl.count()});
	});
	CHECK(b.block("waf.js", "192.0.2.7", std::nullopt, "sqli").outcome == BlockOutcome::Blocked);
	REQUIRE(written.size() == 1);
	CHECK(written[0].prefix == "192.0.2.7/32");
	CHECK(written[0].ttl == 300);
	CHECK(written[0].reason == "sqli");
	CHECK(b.block("waf.js", "127.0.0.1", std::chrono::seconds(60), "").outcome == BlockOutcome::NeverBlock);
	CHECK(b.block("waf.js", "nonsense", std::nullopt, "").outcome == BlockOutcome::Invalid);
	CHECK(b.block("waf.js", "192.0.2.8", std::chrono::seconds(0), "").outcome == BlockOutcome::Invalid);
	CHECK(b.block("waf.js", "192.0.2.9", std::chrono::seconds(60), std::string(80, 'r')).outcome ==
	      BlockOutcome::Invalid);
	// Refusals before the rate cost nothing: one block is left.
	CHECK(b.block("waf.js", "192.0.2.8", std::chrono::seconds(60), "").outcome == BlockOutcome::Blocked);
	BlockResult limited = b.block("waf.js", "192.0.2.9", std::chrono::seconds(60), "");
	CHECK(limited.outcome == BlockOutcome::RateLimited);
	CHECK(has(limited.message, "2 blocks a minute"));
	CHECK(written.size() == 2);
	b.protect(net::parse_ip("198.51.100.5"));
	CHECK(b.block("other.js", "198.51.100.5", std::nullopt, "").outcome == BlockOutcome::NeverBlock);
	fail = true;
	BlockResult down = b.block("other.js", "203.0.113.1", std::nullopt, "");
	CHECK(down.outcome == BlockOutcome::Unavailable);
	CHECK(has(down.message, "fw is not loaded"));
	CHECK(block_outcome_name(BlockOutcome::RateLimited) == "rate_limited");
}

TEST_CASE("durations read as operators write them", "[fw]")
{
	using std::chrono::milliseconds;
	CHECK(config::parse_duration("90") == milliseconds(90000));
	CHECK(config::parse_duration("1.5s") == milliseconds(1500));
	CHECK(config::parse_duration("250ms") == milliseconds(250));
	CHECK(config::parse_duration("10m") == milliseconds(600000));
	CHECK(config::parse_duration("2h") == milliseconds(7200000));
	CHECK(config::parse_duration("1d") == milliseconds(86400000));
	CHECK_FALSE(config::parse_duration("-5s"));
	CHECK_FALSE(config::parse_duration("5 s"));
	CHECK_FALSE(config::parse_duration("5w"));
	CHECK_FALSE(config::parse_duration(""));
	CHECK(config::format_duration(std::chrono::seconds(90)) == "1m30s");
	CHECK(config::format_duration(std::chrono::seconds(86400 + 7200)) == "1d2h");
	CHECK(config::format_duration(std::chrono::seconds(0)) == "0s");
}

TEST_CASE("map sizes name a sizable map and a number", "[fw]")
{
	auto families = builtin_families();
	MapSizes s = parse_map_sizes({"fw_flows=1000000", "fw_blocklist=10"}, families);
	CHECK(s.at("fw_flows") == 1000000);
	CHECK(s.at("fw_blocklist") == 10);
	CHECK_THROWS_WITH(parse_map_sizes({"fw_rules=5"}, families), Catch::Contains("no sizable map 'fw_rules'") &&
									      Catch::Contains("fw_buckets"));
	CHECK_THROWS_WITH(parse_map_sizes({"fw_flows"}, families), Catch::Contains("MAP=ENTRIES"));
	CHECK_THROWS_WITH(parse_map_sizes({"fw_flows=0"}, families), Catch::Contains("from 1 to 16777216"));
	CHECK_THROWS_WITH(parse_map_sizes({"fw_flows=99999999"}, families), Catch::Contains("from 1 to 16777216"));
	CHECK_THROWS_WITH(parse_map_sizes({"fw_flows=5", "fw_flows=6"}, families), Catch::Contains("sized twice"));
}

TEST_CASE("flows sort largest first and rate by interval", "[fw]")
{
	auto flow = [](const char *src, uint64_t bytes, uint64_t packets, int64_t last) {
		FwFlow f;
		f.src = net::parse_ip(src);
		f.dst = net::parse_ip("192.0.2.1");
		f.proto = IPPROTO_UDP;
		f.bytes = bytes;
		f.packets = packets;
		f.first_seen_ms = 1000;
		f.last_seen_ms = last;
		return f;
	};
	std::vector<FwFlow> flows = {flow("10.0.0.1", 100, 50, 3000), flow("10.0.0.2", 500, 5, 2000),
				     flow("10.0.0.3", 100, 1, 5000)};
	auto by_bytes = top_flows(flows, FlowSort::Bytes, 10);
	CHECK(net::to_string(by_bytes[0].src) == "10.0.0.2");
	CHECK(net::to_string(by_bytes[1].src) == "10.0.0.3"); // a tie: the one seen last
	CHECK(top_flows(flows, FlowSort::Packets, 1).size() == 1);
	CHECK(net::to_string(top_flows(flows, FlowSort::Packets, 1)[0].src) == "10.0.0.1");

	flow_lifetime_rates(flows);
	CHECK(flows[0].rate == Approx(50.0));  // 100 bytes over 2 s
	CHECK(flows[1].rate == Approx(500.0)); // a lifetime under a second counts as one
	std::vector<FwFlow> later = flows;
	later[0].bytes = 400;
	later.push_back(flow("10.0.0.4", 80, 1, 6000));
	flow_interval_rates(later, flows, 2.0);
	CHECK(later[0].rate == Approx(150.0));
	CHECK(later[1].rate == Approx(0.0));
	CHECK(later[3].rate == Approx(40.0)); // new since: all of its bytes
	CHECK(net::to_string(top_flows(later, FlowSort::Rate, 1)[0].src) == "10.0.0.1");
	CHECK_THROWS_WITH(parse_flow_sort("size"), Catch::Contains("bytes, packets or rate"));
}

TEST_CASE("[fw] configures what scripts may block", "[fw][config]")
{
	const std::string base = "[[listener]]\naddress = \"127.0.0.1:8080\"\nmode = \"forward\"\n";
	config::Config c = config::load_string(base, "t.toml");
	CHECK(c.fw.never_block.empty());
	CHECK(c.fw.blocks_per_minute == 60);
	CHECK(c.fw.block_ttl == std::chrono::seconds(600));
	c = config::load_string(base + "[fw]\nnever_block = [\"10.0.0.0/8\", \"2001:db8::1\"]\nblocks_per_minute = "
				       "5\nblock_ttl = \"1h\"\n",
				"t.toml");
	REQUIRE(c.fw.never_block.size() == 2);
	CHECK(net::to_string(c.fw.never_block[1]) == "2001:db8::1/128");
	CHECK(c.fw.blocks_per_minute == 5);
	CHECK(c.fw.block_ttl == std::chrono::seconds(3600));
	CHECK_THROWS_WITH(config::load_string(base + "[fw]\nnever_block = [\"10.0.0.1/8\"]\n", "t.toml"),
			  Catch::Contains("t.toml:5:") && Catch::Contains("beyond the prefix"));
	CHECK_THROWS_WITH(config::load_string(base + "[fw]\nnever_block = \"10.0.0.0/8\"\n", "t.toml"),
			  Catch::Contains("must be an array"));
	CHECK_THROWS_WITH(config::load_string(base + "[fw]\nblock = 1\n", "t.toml"), Catch::Contains("unknown key 'block'"));
}

TEST_CASE("/metrics carries fw drops by rule and the blocklist", "[fw]")
{
	proxy::ServerFacts facts;
	CHECK(proxy::prometheus_text({}, facts).find("sonic_fw_") == std::string::npos);
	FwMetrics fw;
	fw.rules.push_back({"dev all drop src 10.0.0.0/8", FwAction::Drop, 12, 12});
	fw.rules.push_back({"dev all limit 5/s burst 5", FwAction::Limit, 30, 20});
	fw.rules.push_back({"dev all pass src 10.1.0.0/16", FwAction::Pass, 7, 0});
	fw.blocklist_entries = 3;
	fw.blocklist_drops = 99;
	fw.limit_drops = 20;
	facts.fw = fw;
	const std::string text = proxy::prometheus_text({}, facts);
	CHECK(has(text, "sonic_fw_rule_drops_total{rule=\"dev all drop src 10.0.0.0/8\"} 12\n"));
	CHECK(has(text, "sonic_fw_rule_drops_total{rule=\"dev all limit 5/s burst 5\"} 20\n"));
	CHECK_FALSE(has(text, "sonic_fw_rule_drops_total{rule=\"dev all pass"));
	CHECK(has(text, "sonic_fw_rule_matches_total{rule=\"dev all pass src 10.1.0.0/16\"} 7\n"));
	CHECK(has(text, "sonic_fw_limited_total 20\n"));
	CHECK(has(text, "sonic_fw_blocklist_entries 3\n"));
	CHECK(has(text, "sonic_fw_blocklist_drops_total 99\n"));
	CHECK(has(text, "# TYPE sonic_fw_blocklist_entries gauge\n"));
}
