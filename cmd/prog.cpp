// sonic prog { load [FAMILY...] | unload | show | probe }
#include "cli.hpp"

#include "bpf/accel.hpp"
#include "bpf/family.hpp"
#include "bpf/probe.hpp"
#include "bpf/progs.hpp"
#include "bpf/splice.hpp"
#include "bpf/steer.hpp"
#include "out/error.hpp"
#include "out/log.hpp"
#include "sys/caps.hpp"

#include <algorithm>
#include <filesystem>

namespace sonic::cmd {

namespace {

const std::initializer_list<sys::Cap> kBpfCaps = {sys::Cap::Bpf, sys::Cap::NetAdmin, sys::Cap::Perfmon};

// "accel, splice, steer"
std::string families_list(const Cli &cli)
{
	std::string s;
	for (const bpf::Family &f : cli.families)
		s += (s.empty() ? "" : ", ") + std::string(f.name);
	return s;
}

// The families a command names, in the order given; every compiled-in one
// when it names none.
std::vector<const bpf::Family *> named_families(const Cli &cli, const std::vector<std::string> &names,
						const std::string &verb)
{
	std::vector<const bpf::Family *> out;
	if (names.empty()) {
		for (const bpf::Family &f : cli.families)
			out.push_back(&f);
		return out;
	}
	for (const std::string &name : names) {
		auto it = std::find_if(cli.families.begin(), cli.families.end(),
				       [&](const bpf::Family &f) { return f.name == name; });
		if (it == cli.families.end())
			throw usage_error(verb, "unknown family '" + name + "' (the families are " + families_list(cli) + ")");
		if (std::find(out.begin(), out.end(), &*it) != out.end())
			throw usage_error(verb, "family '" + name + "' named twice");
		out.push_back(&*it);
	}
	return out;
}

// One family's row of `prog load`: what it is now, and the features its
// alternatives provide (accel's release_path).
out::Value load_row(const bpf::Family &f, const bpf::FamilyLoad &r)
{
	out::Value row = {{"name", std::string(f.name)},
			  {"status", std::string(bpf::load_status_name(r.status))},
			  {"changed", r.changed()}};
	for (const bpf::FeatureChoice &c : r.features)
		row[c.feature] = c.value;
	row["programs"] = r.programs;
	row["maps"] = r.maps;
	if (r.error) {
		row["reason"] = r.error->what();
		row["hint"] = r.error->hint();
	}
	return row;
}

out::Value refusal_row(const bpf::Family &f, const bpf::Refusal &r, const std::string &stand_in)
{
	return {{"family", std::string(f.name)},
		{"program", r.program},
		{"type", r.type},
		{"errno", errno_name(r.err)},
		{"injected", r.injected},
		{"fallback", stand_in.empty() ? out::Value() : out::Value(stand_in)},
		{"reason", r.reason},
		{"hint", r.hint}};
}

int load(Cli &cli, const std::vector<std::string> &names, const std::vector<std::string> &map_sizes)
{
	std::vector<const bpf::Family *> families = named_families(cli, names, "prog load");
	const bpf::MapSizes sizes = bpf::parse_map_sizes(map_sizes, cli.families);
	sys::require_caps("prog load", kBpfCaps);
	bpf::Bpffs fs = cli.bpffs();
	fs.ensure();
	Fd lock = fs.lock();
	out::Value rows = out::Value::array();
	out::Value refused = out::Value::array();
	std::vector<Error> unavailable;
	bool changed = false;
	for (const bpf::Family *f : families) {
		bpf::FamilyLoad r = bpf::load_family(fs, *f, sizes);
		// splice works as soon as it is loaded: the proxy only adds sockets.
		if (f->name == "splice" && r.status != bpf::LoadStatus::Unavailable)
			changed |= bpf::splice_attach(fs);
		changed |= r.changed();
		rows.push_back(load_row(*f, r));
		for (const auto &[refusal, stand_in] : r.refused)
			refused.push_back(refusal_row(*f, refusal, stand_in));
		if (r.error)
			unavailable.push_back(*r.error);
	}
	// A family named on the command line must load; a bare `prog load`
	// loads what this kernel allows and warns about the rest.
	const bool failed = !unavailable.empty() && (!names.empty() || unavailable.size() == families.size());
	if (!failed)
		for (const Error &e : unavailable)
			log::warn(e.what() + (e.hint().empty() ? std::string() : " (" + e.hint() + ")"));
	cli.report({{"changed", changed}, {"bpffs", fs.root()}, {"families", rows}, {"refused", refused}});
	if (failed)
		throw unavailable.front();
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
	out::Value families = out::Value::array();
	for (const bpf::Family &f : cli.families) {
		out::Value row = {{"name", std::string(f.name)},
				  {"state", std::string(bpf::family_state_name(bpf::family_state(fs, f)))}};
		for (const bpf::FeatureChoice &c : bpf::pinned_features(fs, f))
			row[c.feature] = c.value;
		families.push_back(row);
	}
	out::Value programs = out::Value::array();
	for (const bpf::ProgramInfo &p : bpf::list_programs(fs)) {
		out::Value row = {{"id", p.id}, {"type", p.type}, {"name", p.name}, {"tag", p.tag}, {"attached", p.attached}};
		row["run_count"] = p.run_count ? out::Value(*p.run_count) : out::Value();
		row["run_time_ns"] = p.run_time_ns ? out::Value(*p.run_time_ns) : out::Value();
		row["pinned"] = p.pinned;
		programs.push_back(row);
	}
	cli.print({{"bpffs", fs.root()},
		   {"bpf_stats_enabled", bpf::bpf_stats_enabled()},
		   {"families", families},
		   {"programs", programs}});
	return 0;
}

out::Value tri(const std::optional<bool> &v)
{
	return v ? out::Value(*v) : out::Value();
}

out::Value probe_rows(const std::vector<bpf::ProbeResult> &results)
{
	out::Value rows = out::Value::array();
	for (const bpf::ProbeResult &r : results)
		rows.push_back({{"name", r.name}, {"available", tri(r.available)}, {"detail", r.detail}});
	return rows;
}

template <typename T> out::Value or_null(const std::optional<T> &v)
{
	return v ? out::Value(*v) : out::Value();
}

int probe(Cli &cli)
{
	sys::require_caps("prog probe", kBpfCaps);
	const bpf::Probe p = bpf::probe_kernel(cli.families, cli.bpffs());
	const bpf::KernelFacts &k = p.kernel;
	out::Value kernel = {{"release", k.release},
			     {"lockdown", k.lockdown},
			     {"lsm", k.lsms},
			     {"btf", k.btf},
			     {"bpffs", or_null(k.bpffs)},
			     {"cgroup2", or_null(k.cgroup2)},
			     {"bpf_jit_enable", or_null(k.jit)},
			     {"unprivileged_bpf_disabled", or_null(k.unprivileged_bpf_disabled)},
			     {"missing_capabilities", k.missing_caps}};
	if (!k.notes.empty())
		kernel["notes"] = k.notes;
	out::Value families = out::Value::array();
	out::Value programs = out::Value::array();
	for (const bpf::FamilyProbe &f : p.families) {
		out::Value row = {{"name", f.name}, {"available", f.available}};
		// A feature is chosen only for a family that loads: an unavailable
		// family names none, as `prog load` does.
		for (const bpf::FeatureChoice &c : f.features)
			row[c.feature] = f.available ? out::Value(c.value) : out::Value();
		row["reason"] = f.available ? out::Value() : out::Value(f.reason);
		families.push_back(row);
		for (const bpf::ProgramProbe &pp : f.programs) {
			const auto &r = pp.refusal;
			programs.push_back({{"family", f.name},
					    {"name", pp.name},
					    {"type", pp.type},
					    {"alternative_for", pp.alternative_for.empty() ? out::Value() : out::Value(pp.alternative_for)},
					    {"loads", !r.has_value()},
					    {"errno", r ? out::Value(errno_name(r->err)) : out::Value()},
					    {"reason", r ? out::Value(r->reason) : out::Value()},
					    {"hint", r ? out::Value(r->hint) : out::Value()}});
		}
	}
	out::Value helpers = out::Value::array();
	for (const bpf::HelperProbe &h : p.helpers)
		helpers.push_back({{"helper", h.helper},
				   {"program_type", h.program_type},
				   {"available", tri(h.available)},
				   {"programs", h.programs}});
	cli.print({{"kernel", kernel},
		   {"families", families},
		   {"programs", programs},
		   {"program_types", probe_rows(p.program_types)},
		   {"attach_points", probe_rows(p.attach_points)},
		   {"helpers", helpers}});
	return 0;
}

} // namespace

void add_prog(Cli &cli)
{
	CLI::App *prog = cli.object("prog", "sonic's BPF programs: load, unload, show, probe");
	auto load_names = std::make_shared<std::vector<std::string>>();
	auto map_sizes = std::make_shared<std::vector<std::string>>();
	CLI::App *load_cmd = cli.verb(prog, "load",
				      "Load and pin the BPF families named, or every one this kernel allows "
				      "(repeating it changes nothing)",
				      [&cli, load_names, map_sizes] { return load(cli, *load_names, *map_sizes); });
	std::string alternatives;
	for (const bpf::Family &f : cli.families)
		alternatives += (alternatives.empty() ? "" : " | ") + std::string(f.name);
	load_cmd->add_option("family", *load_names,
			     alternatives + " (FAMILY..., in any order; none: every family this kernel allows)");
	load_cmd->add_option("--map-size", *map_sizes, "MAP=ENTRIES: the size of a map made by this load (repeatable)")
		->allow_extra_args(false);

	auto force = std::make_shared<bool>(false);
	auto timeout = std::make_shared<double>(5.0);
	CLI::App *unload_cmd = cli.verb(prog, "unload",
					"Stop acceleration and steering; remove the links, filters, routes, programs and maps sonic made",
					[&cli, force, timeout] { return unload(cli, *force, *timeout); });
	unload_cmd->add_flag("--force", *force, "Remove the maps even if accelerated sockets hold unread data");
	unload_cmd->add_option("--timeout", *timeout, "Seconds to wait for readers to drain accelerated sockets")
		->capture_default_str();

	cli.verb(prog, "show", "List sonic's families and programs: state, release path, attach points, run counts",
		 [&cli] { return show(cli); });

	cli.verb(prog, "probe",
		 "Show what this kernel allows sonic: lockdown, LSMs, BTF, bpffs, cgroup v2, program types, attach "
		 "points, helpers, and per family and program whether it loads",
		 [&cli] { return probe(cli); });
}

} // namespace sonic::cmd
