// sonic stats [accel|splice|all] [--watch SECS] [--count N]
#include "cli.hpp"

#include "bpf/accel.hpp"
#include "bpf/family.hpp"
#include "bpf/splice.hpp"
#include "out/error.hpp"
#include "sys/caps.hpp"

#include <csignal>
#include <iostream>
#include <ctime>
#include <optional>

namespace sonic::cmd {

namespace {

// One sample of every family asked for: its gauges and its counters.
struct Sample {
	std::optional<bpf::AccelCounters> accel;
	std::optional<bpf::SpliceCounters> splice;
};

Sample take_sample(const bpf::Bpffs &fs, const std::string &which)
{
	Sample s;
	const bool all = which == "all";
	if (which == "accel" || (all && bpf::family_maps_usable(fs, bpf::builtin_family("accel"))))
		s.accel = bpf::accel_counters(fs);
	if (which == "splice" || (all && bpf::family_maps_usable(fs, bpf::builtin_family("splice"))))
		s.splice = bpf::splice_counters(fs);
	if (!s.accel && !s.splice)
		throw env_error("read counters", "no sonic BPF family is loaded", fs.root())
			.with_hint("run `sonic prog load` or `sonic accel enable` first");
	return s;
}

template <size_t N, typename NameFn>
out::Value counters_value(out::Value v, const std::array<uint64_t, N> &counter, NameFn name)
{
	for (size_t i = 0; i < N; ++i)
		v[std::string(name(i))] = counter[i];
	return v;
}

template <size_t N, typename NameFn>
out::Value rates(const std::array<uint64_t, N> &now, const std::array<uint64_t, N> &before, double seconds,
		 NameFn name)
{
	out::Value v = out::Value::object();
	for (size_t i = 0; i < N; ++i) {
		double d = static_cast<double>(now[i] - before[i]) / seconds;
		v[std::string(name(i))] = static_cast<uint64_t>(d + 0.5);
	}
	return v;
}

void add_sample(out::Value &v, const Sample &now, const Sample *before, double seconds)
{
	if (now.accel) {
		v["accel"] = counters_value({{"sockets", now.accel->sockets}}, now.accel->counter, bpf::accel_counter_name);
		if (before && before->accel)
			v["accel_per_second"] =
				rates(now.accel->counter, before->accel->counter, seconds, bpf::accel_counter_name);
	}
	if (now.splice) {
		const bpf::SpliceCounters &c = *now.splice;
		v["splice"] = counters_value({{"tunnels", c.tunnels}, {"sockets", c.sockets}, {"copying", c.copying}},
					     c.counter, bpf::splice_counter_name);
		if (before && before->splice)
			v["splice_per_second"] =
				rates(c.counter, before->splice->counter, seconds, bpf::splice_counter_name);
	}
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
	if (which != "accel" && which != "splice" && which != "all")
		throw usage_error("stats", "unknown statistics '" + which + "' (accel, splice, all)");
	if (watch && !(*watch > 0))
		throw usage_error("stats", "--watch needs a positive number of seconds");
	if (count && *count < 1)
		throw usage_error("stats", "--count needs a positive number");
	if (count && !watch)
		throw usage_error("stats", "--count only goes with --watch");
	sys::require_caps("stats", {sys::Cap::Bpf});
	bpf::Bpffs fs = cli.bpffs();

	if (!watch) {
		out::Value v = out::Value::object();
		add_sample(v, take_sample(fs, which), nullptr, 0);
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
		Sample now = take_sample(fs, which);
		out::Value v = {{"time", timestamp()}};
		add_sample(v, now, before ? &*before : nullptr, *watch);
		cli.print(v);
		before = now;
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
	st->add_option("which", *which, "accel | splice | all (help: print this help)")->capture_default_str();
	st->add_option("--watch", *watch, "Print again every SECS seconds until interrupted");
	st->add_option("--count", *count, "With --watch: stop after N samples");
}

} // namespace sonic::cmd
