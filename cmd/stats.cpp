// sonic stats [accel|splice|steer|all] [--watch SECS] [--count N]
#include "cli.hpp"

#include "bpf/accel.hpp"
#include "bpf/family.hpp"
#include "bpf/splice.hpp"
#include "bpf/steer.hpp"
#include "out/error.hpp"
#include "sys/caps.hpp"

#include <csignal>
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

// One sample: the counters of each family asked for, as JSON members.
struct Sample {
	std::optional<out::Value> accel, splice, steer;
};

Sample sample(const bpf::Bpffs &fs, const std::string &which)
{
	Sample s;
	if (which == "all") {
		// Every loaded family; an error only when none is.
		const bool accel = bpf::family_maps_usable(fs, bpf::builtin_family("accel"));
		const bool splice = bpf::family_maps_usable(fs, bpf::builtin_family("splice"));
		const bool steer = bpf::family_maps_usable(fs, bpf::builtin_family("steer"));
		if (!accel && !splice && !steer)
			throw env_error("read counters", "no family is loaded", fs.root())
				.with_hint("run `sonic accel enable`, `sonic tproxy add ...` or `sonic prog load` first");
		if (accel)
			s.accel = accel_value(bpf::accel_counters(fs));
		if (splice)
			s.splice = splice_value(bpf::splice_counters(fs));
		if (steer)
			s.steer = steer_value(bpf::steer_counters(fs));
	} else if (which == "accel") {
		s.accel = accel_value(bpf::accel_counters(fs));
	} else if (which == "splice") {
		s.splice = splice_value(bpf::splice_counters(fs));
	} else {
		s.steer = steer_value(bpf::steer_counters(fs));
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

std::string timestamp()
{
	char buf[32];
	std::time_t t = std::time(nullptr);
	std::tm tm{};
	gmtime_r(&t, &tm);
	std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
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

int stats(Cli &cli, const std::string &which, std::optional<double> watch, std::optional<long> count)
{
	if (which == "help") {
		std::cout << help_of(cli.app.get_subcommand("stats"));
		return 0;
	}
	if (which != "accel" && which != "splice" && which != "steer" && which != "all")
		throw usage_error("stats", "unknown statistics '" + which + "' (accel, splice, steer, all)").with_usage();
	if (watch && !(*watch > 0))
		throw usage_error("stats", "--watch needs a positive number of seconds");
	if (count && *count < 1)
		throw usage_error("stats", "--count needs a positive number");
	if (count && !watch)
		throw usage_error("stats", "--count only goes with --watch").with_usage();
	sys::require_caps("stats", {sys::Cap::Bpf});
	bpf::Bpffs fs = cli.bpffs();

	auto members = [](const Sample &smp, out::Value &v) {
		if (smp.accel)
			v["accel"] = *smp.accel;
		if (smp.splice)
			v["splice"] = *smp.splice;
		if (smp.steer)
			v["steer"] = *smp.steer;
	};
	if (!watch) {
		out::Value v = out::Value::object();
		members(sample(fs, which), v);
		cli.print(v);
		return 0;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, nullptr);
	std::optional<Sample> before;
	for (long n = 0; !count || n < *count; ++n) {
		if (n > 0 && !wait_or_signal(*watch))
			break;
		Sample now = sample(fs, which);
		out::Value v = {{"time", timestamp()}};
		members(now, v);
		if (before && now.accel && before->accel)
			v["accel_per_second"] = rates(*now.accel, *before->accel, *watch, {"sockets"});
		if (before && now.splice && before->splice)
			v["splice_per_second"] =
				rates(*now.splice, *before->splice, *watch, {"tunnels", "sockets", "copying"});
		if (before && now.steer && before->steer)
			v["steer_per_second"] = rates(*now.steer, *before->steer, *watch, {"rules"});
		cli.print(v);
		before = std::move(now);
	}
	return 0;
}

} // namespace

void add_stats(Cli &cli)
{
	auto which = std::make_shared<std::string>("all");
	auto watch = std::make_shared<std::optional<double>>();
	auto count = std::make_shared<std::optional<long>>();
	CLI::App *st = cli.command("stats", "Counters of sonic's data plane, read from the pinned maps",
				   [&cli, which, watch, count] { return stats(cli, *which, *watch, *count); });
	st->add_option("which", *which, "accel | splice | steer | all (help: print this help)")->capture_default_str();
	st->add_option("--watch", *watch, "Print again every SECS seconds until interrupted");
	st->add_option("--count", *count, "With --watch: stop after N samples");
}

} // namespace sonic::cmd
