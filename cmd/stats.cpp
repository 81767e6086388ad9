// sonic stats [accel|all] [--watch SECS] [--count N]
#include "cli.hpp"

#include "bpf/accel.hpp"
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

out::Value rates(const bpf::AccelCounters &now, const bpf::AccelCounters &before, double seconds)
{
	out::Value v = out::Value::object();
	for (size_t i = 0; i < SONIC_ACCEL_NR_COUNTERS; ++i) {
		double d = static_cast<double>(now.counter[i] - before.counter[i]) / seconds;
		v[std::string(bpf::accel_counter_name(i))] = static_cast<uint64_t>(d + 0.5);
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
	if (which != "accel" && which != "all")
		throw usage_error("stats", "unknown statistics '" + which + "' (accel, all)").with_usage();
	if (watch && !(*watch > 0))
		throw usage_error("stats", "--watch needs a positive number of seconds");
	if (count && *count < 1)
		throw usage_error("stats", "--count needs a positive number");
	if (count && !watch)
		throw usage_error("stats", "--count only goes with --watch").with_usage();
	sys::require_caps("stats", {sys::Cap::Bpf});
	bpf::Bpffs fs = cli.bpffs();

	if (!watch) {
		cli.print({{"accel", accel_value(bpf::accel_counters(fs))}});
		return 0;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, nullptr);
	std::optional<bpf::AccelCounters> before;
	for (long n = 0; !count || n < *count; ++n) {
		if (n > 0 && !wait_or_signal(*watch))
			break;
		bpf::AccelCounters now = bpf::accel_counters(fs);
		out::Value v = {{"time", timestamp()}, {"accel", accel_value(now)}};
		if (before)
			v["accel_per_second"] = rates(now, *before, *watch);
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
	st->add_option("which", *which, "accel | all (help: print this help)")->capture_default_str();
	st->add_option("--watch", *watch, "Print again every SECS seconds until interrupted");
	st->add_option("--count", *count, "With --watch: stop after N samples");
}

} // namespace sonic::cmd
