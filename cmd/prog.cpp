// sonic prog { load | unload | show }
#include "cli.hpp"

#include "bpf/accel.hpp"
#include "bpf/family.hpp"
#include "bpf/progs.hpp"
#include "bpf/splice.hpp"
#include "bpf/steer.hpp"
#include "out/error.hpp"
#include "out/log.hpp"
#include "sys/caps.hpp"

#include <filesystem>

namespace sonic::cmd {

namespace {

const std::initializer_list<sys::Cap> kBpfCaps = {sys::Cap::Bpf, sys::Cap::NetAdmin, sys::Cap::Perfmon};

int load(Cli &cli)
{
	sys::require_caps("prog load", kBpfCaps);
	bpf::Bpffs fs = cli.bpffs();
	fs.ensure();
	Fd lock = fs.lock();
	out::Value families = out::Value::array();
	bool changed = false;
	for (const bpf::Family &f : cli.families) {
		bpf::LoadResult r = bpf::load_family(fs, f);
		// splice works as soon as it is loaded: the proxy only adds sockets.
		if (f.name == "splice")
			r.changed |= bpf::splice_attach(fs);
		changed |= r.changed;
		families.push_back({{"name", std::string(f.name)}, {"changed", r.changed}, {"programs", r.programs}, {"maps", r.maps}});
	}
	cli.report({{"changed", changed}, {"bpffs", fs.root()}, {"families", families}});
	return 0;
}

int unload(Cli &cli, bool force, double timeout)
{
	auto wait = seconds_arg(timeout, "--timeout");
	sys::require_caps("prog unload", kBpfCaps);
	bpf::Bpffs fs = cli.bpffs();
	if (!std::filesystem::exists(fs.root())) {
		cli.report({{"changed", false}, {"bpffs", fs.root()}, {"removed", out::Value::array()}});
		return 0;
	}
	Fd lock = fs.lock();
	out::Value v = {{"changed", false}, {"bpffs", fs.root()}};
	bool has_accel = false;
	for (const bpf::Family &f : cli.families)
		has_accel = has_accel || f.name == "accel";
	if (has_accel) {
		uint64_t pending = 0, pending_bytes = 0;
		if (bpf::family_maps_usable(fs, bpf::builtin_family("accel"))) {
			bpf::ReleaseReport rel = bpf::accel_release_all(fs, wait);
			v["released_sockets"] = rel.released;
			pending = rel.pending;
			pending_bytes = rel.pending_bytes;
		} else {
			// Another build's maps: its sockets cannot be drained safely.
			pending = bpf::accel_pinned_sockets(fs);
		}
		if (pending > 0 && !force)
			throw env_error("prog unload",
					std::to_string(pending) + " accelerated socket(s) hold " +
						(pending_bytes ? std::to_string(pending_bytes) + " " : "") +
						"redirected byte(s) their application has not read; removing the map would "
						"drop them",
					fs.root())
				.with_hint("acceleration is stopped: retry once those applications have read, or pass --force "
					   "to discard the data");
		v["discarded_sockets"] = pending;
	}
	for (const bpf::Family &f : cli.families)
		if (f.name == "steer") {
			// tc filters and policy routing are not links: remove them
			// before the programs they run go away.
			bpf::SteerFlush flushed = bpf::steer_flush_locked(fs);
			v["steer_rules_removed"] = flushed.rules;
		}
	for (const bpf::Family &f : cli.families) {
		if (f.name != "splice" || !bpf::family_maps_usable(fs, f))
			continue;
		// Tunnels stay up: the proxies holding the maps keep programs and
		// maps alive until their last tunnel is closed. Nothing is dropped.
		uint64_t tunnels = bpf::splice_counters(fs).tunnels;
		v["splice_tunnels_left"] = tunnels;
		if (tunnels > 0)
			log::warn(std::to_string(tunnels) +
				  " spliced tunnel(s) keep running: their proxies hold the programs and maps, "
				  "which leave the kernel when the last one closes them");
	}
	out::Value removed = out::Value::array();
	for (const bpf::Family &f : cli.families)
		for (const std::string &path : bpf::unpin_family(fs, f))
			removed.push_back(path);
	lock.reset();
	bool dirs = fs.remove_empty_dirs();
	v["changed"] = !removed.empty() || dirs;
	v["removed"] = removed;
	cli.report(v);
	return 0;
}

int show(Cli &cli)
{
	sys::require_caps("prog show", {sys::Cap::Bpf});
	bpf::Bpffs fs = cli.bpffs();
	out::Value programs = out::Value::array();
	for (const bpf::ProgramInfo &p : bpf::list_programs(fs)) {
		out::Value row = {{"id", p.id}, {"type", p.type}, {"name", p.name}, {"tag", p.tag}, {"attached", p.attached}};
		row["run_count"] = p.run_count ? out::Value(*p.run_count) : out::Value();
		row["run_time_ns"] = p.run_time_ns ? out::Value(*p.run_time_ns) : out::Value();
		row["pinned"] = p.pinned;
		programs.push_back(row);
	}
	cli.print({{"bpffs", fs.root()}, {"bpf_stats_enabled", bpf::bpf_stats_enabled()}, {"programs", programs}});
	return 0;
}

} // namespace

void add_prog(Cli &cli)
{
	CLI::App *prog = cli.object("prog", "sonic's BPF programs: load, unload, show");
	cli.verb(prog, "load", "Load and pin every sonic BPF program and map (repeating it changes nothing)",
		 [&cli] { return load(cli); });

	auto force = std::make_shared<bool>(false);
	auto timeout = std::make_shared<double>(5.0);
	CLI::App *unload_cmd = cli.verb(prog, "unload",
					"Stop acceleration and steering; remove the links, filters, routes, programs and maps sonic made",
					[&cli, force, timeout] { return unload(cli, *force, *timeout); });
	unload_cmd->add_flag("--force", *force, "Remove the maps even if accelerated sockets hold unread data");
	unload_cmd->add_option("--timeout", *timeout, "Seconds to wait for readers to drain accelerated sockets")
		->capture_default_str();

	cli.verb(prog, "show", "List sonic's programs: id, type, name, attach points, run counts",
		 [&cli] { return show(cli); });
}

} // namespace sonic::cmd
