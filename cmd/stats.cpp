// sonic stats [accel|splice|steer|fw|flows|all] [--watch SECS] [--count N] [--top N] [--sort KEY]
#include "cli.hpp"

#include "bpf/accel.hpp"
#include "bpf/family.hpp"
#include "bpf/fw.hpp"
#include "bpf/fw_flows.hpp"
#include "bpf/splice.hpp"
#include "bpf/steer.hpp"
#include "out/error.hpp"
#include "sys/caps.hpp"

#include <csignal>
#include <netinet/in.h>
#include <iostream>
#include <ctime>
#include <optional>

namespace sonic::cmd {

namespace {

out::Value accel_value(const bpf::AccelCounters &c)
{
	out::Value v = {{"sockets", c.sockets}};
	for (size_t i = 0; i < SONIC_ACCEL_NR_COUNTERS; ++i)
		v[std::string(bpf::accel_counter_name(i))] = c.counter[i];
	return v;
}

out::Value splice_value(const bpf::SpliceCounters &c)
{
	out::Value v = {{"tunnels", c.tunnels}, {"sockets", c.sockets}, {"copying", c.copying}};
	for (size_t i = 0; i < SONIC_SPLICE_NR_COUNTERS; ++i)
		v[std::string(bpf::splice_counter_name(i))] = c.counter[i];
	return v;
}

out::Value steer_value(const bpf::SteerCounters &c)
{
	out::Value v = {{"rules", c.rules},
			{"packets_assigned", c.counter[SONIC_STEER_ASSIGNED_ESTABLISHED] +
						     c.counter[SONIC_STEER_ASSIGNED_LISTENER]}};
	for (size_t i = 0; i < SONIC_STEER_NR_COUNTERS; ++i)
		v[std::string(bpf::steer_counter_name(i))] = c.counter[i];
	return v;
}

out::Value fw_value(const bpf::FwCounters &c)
{
	out::Value v = {{"rules", c.rules}, {"attachments", c.attachments}, {"blocklist", c.blocklist}, {"flows", c.flows}};
	for (size_t i = 0; i < SONIC_FW_NR_COUNTERS; ++i)
		v[std::string(bpf::fw_counter_name(i))] = c.counter[i];
	return v;
}

out::Value flow_row(const bpf::FwFlow &f)
{
	const bool ports = f.proto == IPPROTO_TCP || f.proto == IPPROTO_UDP;
	auto end = [ports](const net::IpAddr &a, uint16_t port) {
		return ports ? net::to_string(net::Endpoint{a, port}) : net::to_string(a);
	};
	const bool icmp = f.proto == IPPROTO_ICMP || f.proto == 58;
	return {{"src", end(f.src, f.sport)},
		{"dst", end(f.dst, f.dport)},
		{"proto", std::string(bpf::fw_proto_name(f.proto))},
		{"icmp", icmp ? out::Value(std::to_string(f.dport >> 8) + "/" + std::to_string(f.dport & 0xff)) : out::Value()},
		{"dev", f.dev.empty() ? out::Value(f.ifindex) : out::Value(f.dev)},
		{"packets", f.packets},
		{"bytes", f.bytes},
		{"dropped", f.dropped},
		{"rate", static_cast<uint64_t>(f.rate + 0.5)},
		{"verdict", f.verdict},
		{"rule", f.rule_id ? out::Value(f.rule_id) : out::Value()},
		{"first_seen", out::iso_time(f.first_seen_ms / 1000)},
		{"last_seen", out::iso_time(f.last_seen_ms / 1000)}};
}

struct FlowView {
	bpf::FlowSort sort = bpf::FlowSort::Bytes;
	size_t top = 20;
};

out::Value flows_value(const std::vector<bpf::FwFlow> &flows, const FlowView &view)
{
	out::Value rows = out::Value::array();
	for (const bpf::FwFlow &f : bpf::top_flows(flows, view.sort, view.top))
		rows.push_back(flow_row(f));
	return {{"total", flows.size()}, {"flows", rows}};
}

// One sample: the counters of each family asked for, as JSON members.
struct Sample {
	std::optional<out::Value> accel, splice, steer, fw;
};

Sample sample(const bpf::Bpffs &fs, const std::string &which)
{
	Sample s;
	if (which == "all") {
		// Every loaded family; an error only when none is.
		const bool accel = bpf::family_maps_usable(fs, bpf::builtin_family("accel"));
		const bool splice = bpf::family_maps_usable(fs, bpf::builtin_family("splice"));
		const bool steer = bpf::family_maps_usable(fs, bpf::builtin_family("steer"));
		const bool fw = bpf::family_maps_usable(fs, bpf::builtin_family("fw"));
		if (!accel && !splice && !steer && !fw)
			throw env_error("read counters", "no family is loaded", fs.root())
				.with_hint("run `sonic accel enable`, `sonic tproxy add ...`, `sonic fw attach ...` or `sonic "
					   "prog load` first");
		if (accel)
			s.accel = accel_value(bpf::accel_counters(fs));
		if (splice)
			s.splice = splice_value(bpf::splice_counters(fs));
		if (steer)
			s.steer = steer_value(bpf::steer_counters(fs));
		if (fw)
			s.fw = fw_value(bpf::fw_counters(fs));
	} else if (which == "accel") {
		s.accel = accel_value(bpf::accel_counters(fs));
	} else if (which == "splice") {
		s.splice = splice_value(bpf::splice_counters(fs));
	} else if (which == "steer") {
		s.steer = steer_value(bpf::steer_counters(fs));
	} else {
		s.fw = fw_value(bpf::fw_counters(fs));
	}
	return s;
}

// Per-second increase of every counter member (gauges are left out).
out::Value rates(const out::Value &now, const out::Value &before, double seconds,
		 std::initializer_list<const char *> gauges)
{
	out::Value v = out::Value::object();
	for (auto it = now.begin(); it != now.end(); ++it) {
		bool gauge = false;
		for (const char *g : gauges)
			gauge = gauge || it.key() == g;
		if (gauge || !before.contains(it.key()))
			continue;
		double d = static_cast<double>(it.value().get<uint64_t>() - before[it.key()].get<uint64_t>()) / seconds;
		v[it.key()] = static_cast<uint64_t>(d + 0.5);
	}
	return v;
}

// Waits SECONDS or until SIGINT/SIGTERM; returns false on a signal.
bool wait_or_signal(double seconds)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	struct timespec ts;
	ts.tv_sec = static_cast<time_t>(seconds);
	ts.tv_nsec = static_cast<long>((seconds - static_cast<double>(ts.tv_sec)) * 1e9);
	return sigtimedwait(&set, nullptr, &ts) < 0;
}

void block_signals()
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, nullptr);
}

// stats flows: the top flows, and under --watch their rates since the
// sample before.
int flows(Cli &cli, const bpf::Bpffs &fs, const FlowView &view, std::optional<double> watch, std::optional<long> count)
{
	if (!watch) {
		cli.print(flows_value(bpf::fw_flows(fs), view));
		return 0;
	}
	block_signals();
	std::vector<bpf::FwFlow> before;
	for (long n = 0; !count || n < *count; ++n) {
		if (n > 0 && !wait_or_signal(*watch))
			break;
		std::vector<bpf::FwFlow> now = bpf::fw_flows(fs);
		if (n > 0)
			bpf::flow_interval_rates(now, before, *watch);
		out::Value v = {{"time", out::iso_time(std::time(nullptr))}};
		v.update(flows_value(now, view));
		cli.print(v);
		before = std::move(now);
	}
	return 0;
}

struct Options {
	std::string which = "all";
	std::optional<double> watch;
	std::optional<long> count;
	std::optional<long> top;
	std::optional<std::string> sort;
};

int stats(Cli &cli, const Options &o)
{
	const std::string &which = o.which;
	if (which == "help") {
		std::cout << help_of(cli.app.get_subcommand("stats"));
		return 0;
	}
	if (which != "accel" && which != "splice" && which != "steer" && which != "fw" && which != "flows" &&
	    which != "all")
		throw usage_error("stats", "unknown statistics '" + which + "' (accel, splice, steer, fw, flows, all)")
			.with_usage();
	if (o.watch && !(*o.watch > 0))
		throw usage_error("stats", "--watch needs a positive number of seconds");
	if (o.count && *o.count < 1)
		throw usage_error("stats", "--count needs a positive number");
	if (o.count && !o.watch)
		throw usage_error("stats", "--count only goes with --watch").with_usage();
	if ((o.top || o.sort) && which != "flows")
		throw usage_error("stats", "--top and --sort go with flows only").with_usage();
	if (o.top && *o.top < 1)
		throw usage_error("stats", "--top needs a positive number");
	FlowView view;
	if (o.top)
		view.top = static_cast<size_t>(*o.top);
	if (o.sort)
		view.sort = bpf::parse_flow_sort(*o.sort);
	sys::require_caps("stats", {sys::Cap::Bpf});
	bpf::Bpffs fs = cli.bpffs();
	if (which == "flows")
		return flows(cli, fs, view, o.watch, o.count);

	auto members = [](const Sample &smp, out::Value &v) {
		if (smp.accel)
			v["accel"] = *smp.accel;
		if (smp.splice)
			v["splice"] = *smp.splice;
		if (smp.steer)
			v["steer"] = *smp.steer;
		if (smp.fw)
			v["fw"] = *smp.fw;
	};
	if (!o.watch) {
		out::Value v = out::Value::object();
		members(sample(fs, which), v);
		cli.print(v);
		return 0;
	}
	block_signals();
	std::optional<Sample> before;
	for (long n = 0; !o.count || n < *o.count; ++n) {
		if (n > 0 && !wait_or_signal(*o.watch))
			break;
		Sample now = sample(fs, which);
		out::Value v = {{"time", out::iso_time(std::time(nullptr))}};
		members(now, v);
		if (before && now.accel && before->accel)
			v["accel_per_second"] = rates(*now.accel, *before->accel, *o.watch, {"sockets"});
		if (before && now.splice && before->splice)
			v["splice_per_second"] =
				rates(*now.splice, *before->splice, *o.watch, {"tunnels", "sockets", "copying"});
		if (before && now.steer && before->steer)
			v["steer_per_second"] = rates(*now.steer, *before->steer, *o.watch, {"rules"});
		if (before && now.fw && before->fw)
			v["fw_per_second"] = rates(*now.fw, *before->fw, *o.watch, {"rules", "attachments", "blocklist", "flows"});
		cli.print(v);
		before = std::move(now);
	}
	return 0;
}

} // namespace

void add_stats(Cli &cli)
{
	auto o = std::make_shared<Options>();
	CLI::App *st = cli.command("stats", "Counters of sonic's data plane, read from the pinned maps",
				   [&cli, o] { return stats(cli, *o); });
	st->add_option("which", o->which, "accel | splice | steer | fw | flows | all (help: print this help)")
		->capture_default_str();
	st->add_option("--watch", o->watch, "Print again every SECS seconds until interrupted");
	st->add_option("--count", o->count, "With --watch: stop after N samples");
	st->add_option("--top", o->top, "flows: the N largest (default 20)");
	st->add_option("--sort", o->sort, "flows: largest by bytes, packets or rate (default bytes)");
}

} // namespace sonic::cmd
