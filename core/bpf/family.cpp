#include "bpf/family.hpp"

#include "accel.skel.h"
#include "splice.skel.h"
#include "steer.skel.h"
#include "fw.skel.h"
#include "bpf/pins.hpp"
#include "bpf/libbpf.hpp"
#include "out/error.hpp"
#include "sonic_abi.h"

#include <algorithm>
#include <array>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <gnutls/crypto.h>
#include <memory>
#include <unistd.h>

namespace sonic::bpf {

namespace {

const void *accel_elf(size_t *size) { return accel_bpf__elf_bytes(size); }
const void *splice_elf(size_t *size) { return splice_bpf__elf_bytes(size); }
const void *steer_elf(size_t *size) { return steer_bpf__elf_bytes(size); }
const void *fw_elf(size_t *size) { return fw_bpf__elf_bytes(size); }

// accel hands sockets back through the sockmap iterator where the kernel
// runs tracing programs, else through a program run once per socket.
const Alternative kAccelAlternatives[] = {
	{"release_path", "accel_release", "iterator"},
	{"release_path", "accel_release_one", "walk"},
};

const std::string_view kFwSizableMaps[] = {
	SONIC_MAP(fw_bpf, fw_blocklist),
	SONIC_MAP(fw_bpf, fw_buckets),
	SONIC_MAP(fw_bpf, fw_flows),
};

const Family kFamilies[] = {
	{"accel", "local socket acceleration (sockops + sk_msg over a SOCKHASH)", accel_elf, kAccelAlternatives},
	{"splice", "kernel TCP tunnels (sk_skb verdict over a SOCKHASH)", splice_elf},
	{"steer", "transparent steering (tc + sk_assign, cgroup connect + getsockopt)", steer_elf},
	{"fw", "edge firewall (XDP: rules, rate limits, blocklist, flow table)", fw_elf, {}, kFwSizableMaps},
};

struct ObjectCloser {
	void operator()(bpf_object *obj) const { bpf_object__close(obj); }
};
using ObjectPtr = std::unique_ptr<bpf_object, ObjectCloser>;

ObjectPtr open_object(const Family &family)
{
	size_t size = 0;
	const void *data = family.elf_bytes(&size);
	std::string name(family.name);
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name.c_str());
	bpf_object *obj = bpf_object__open_mem(data, size, &opts);
	if (!obj)
		throw libbpf_error("open BPF object", errno, name);
	return ObjectPtr(obj);
}

std::array<uint8_t, 32> hash_bytes(const Family &family)
{
	size_t size = 0;
	const void *data = family.elf_bytes(&size);
	std::array<uint8_t, 32> out{};
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, data, size, out.data()) != 0)
		throw kernel_error("hash BPF object", "SHA-256 failed", std::string(family.name));
	return out;
}

bool is_meta(const Family &family, const char *map_name)
{
	return std::string(map_name) == std::string(family.name) + "_meta";
}

void unlink_if_present(const std::string &path)
{
	if (unlink(path.c_str()) != 0 && errno != ENOENT)
		throw errno_error("remove pinned object", errno, path);
}

bool pinned(const std::string &path) { return access(path.c_str(), F_OK) == 0; }

const Alternative *alternative_of(const Family &family, std::string_view program)
{
	for (const Alternative &a : family.alternatives)
		if (a.program == program)
			return &a;
	return nullptr;
}

std::vector<std::string_view> features_of(const Family &family)
{
	std::vector<std::string_view> out;
	for (const Alternative &a : family.alternatives)
		if (std::find(out.begin(), out.end(), a.feature) == out.end())
			out.push_back(a.feature);
	return out;
}

// Whether every program the family needs is pinned: each program that is no
// alternative, and one alternative of each feature.
bool programs_pinned(const Bpffs &fs, const Family &family, const Layout &layout)
{
	for (const std::string &p : layout.programs)
		if (!alternative_of(family, p) && !pinned(fs.prog_path(p)))
			return false;
	for (std::string_view feature : features_of(family)) {
		bool any = false;
		for (const Alternative &a : family.alternatives)
			any = any || (a.feature == feature && pinned(fs.prog_path(a.program)));
		if (!any)
			return false;
	}
	return true;
}

FamilyState state_of(const Bpffs &fs, const Family &family, const Layout &layout)
{
	auto meta = open_pinned(fs.map_path(layout.meta));
	if (!meta)
		return FamilyState::Absent;
	struct sonic_meta value{};
	__u32 zero = 0;
	if (bpf_map_lookup_elem(meta->get(), &zero, &value) != 0)
		throw errno_error("read pinned meta map", errno, fs.map_path(layout.meta));
	if (value.abi_version != SONIC_ABI_VERSION)
		return FamilyState::OtherAbi;
	auto hash = hash_bytes(family);
	if (std::memcmp(value.object_hash, hash.data(), hash.size()) != 0)
		return FamilyState::OtherBuild;
	if (!programs_pinned(fs, family, layout))
		return FamilyState::Absent;
	for (const std::string &m : layout.maps)
		if (!pinned(fs.map_path(m)))
			return FamilyState::Absent;
	return FamilyState::Loaded;
}

bool has(const std::vector<std::string> &list, std::string_view s)
{
	return std::find(list.begin(), list.end(), s) != list.end();
}

// What a refusal means, in sonic's terms.
std::string hint_for(const std::string &type, int err, const std::string &log)
{
	const bool tracing = type == "tracing" || type == "lsm" || type == "ext" || type == "struct_ops";
	if (log.find("failed to resolve CO-RE relocation") != std::string::npos)
		return "this kernel lacks a kernel field or type the program reads (CO-RE): it is older than the program needs";
	if ((err == EPERM || err == EACCES) && tracing)
		return "the kernel refuses tracing programs (lockdown or LSM)";
	if (log.find("BEGIN PROG LOAD LOG") != std::string::npos)
		return "the verifier rejected it; run with -d to see the verifier log";
	if (err == EPERM || err == EACCES)
		return "the kernel refuses this program type (lockdown, LSM or a missing capability)";
	if (err == EINVAL || err == EOPNOTSUPP || err == 524 /* ENOTSUPP */)
		return "this kernel lacks the program type, attach type or a helper the program uses";
	return "";
}

std::string type_of(bpf_program *prog)
{
	const char *t = libbpf_bpf_prog_type_str(bpf_program__type(prog));
	return t ? t : "unknown";
}

Refusal injected_refusal(const std::string &program, const std::string &type)
{
	Refusal r;
	r.program = program;
	r.type = type;
	r.err = EPERM;
	r.reason = "prog '" + program + "': refused by SONIC_BPF_REFUSE (fault injection): " + std::strerror(EPERM);
	r.hint = hint_for(type, EPERM, "");
	r.injected = true;
	return r;
}

// Loads OBJ; on failure, the refusal of the program that failed as libbpf
// and the kernel describe it.
std::optional<Refusal> load_object(bpf_object *obj, const std::string &program, const std::string &type)
{
	take_libbpf_log();
	int err = bpf_object__load(obj);
	if (err == 0)
		return std::nullopt;
	Refusal r;
	r.program = program;
	r.type = type;
	r.err = err < 0 ? -err : err;
	r.detail = take_libbpf_log();
	r.reason = libbpf_reason(r.detail);
	if (r.reason.empty())
		r.reason = std::strerror(r.err);
	r.hint = hint_for(type, r.err, r.detail);
	return r;
}

Error family_error(const Family &family, const Refusal &r)
{
	Error e = kernel_error("load " + std::string(family.name) + " programs", r.reason, std::string(family.name));
	if (!r.hint.empty())
		e.with_hint(r.hint);
	if (!r.detail.empty())
		e.with_detail(r.detail);
	return e;
}

// Which programs one load attempt loads, and what was refused so far.
struct Plan {
	std::vector<std::string> load;
	std::vector<std::pair<Refusal, std::string>> refused; // refusal, stand-in
	std::optional<Error> unavailable;
};

Plan first_plan(const Family &family, const Layout &layout)
{
	Plan plan;
	std::vector<std::string_view> chosen;
	for (const std::string &p : layout.programs) {
		const Alternative *a = alternative_of(family, p);
		if (!a) {
			plan.load.push_back(p);
		} else if (std::find(chosen.begin(), chosen.end(), a->feature) == chosen.end()) {
			chosen.push_back(a->feature);
			plan.load.push_back(p);
		}
	}
	return plan;
}

// Takes a refused program out of PLAN: its next alternative stands in, or
// the family is unavailable.
void refuse(const Family &family, const Layout &layout, Plan &plan, Refusal refusal)
{
	plan.load.erase(std::remove(plan.load.begin(), plan.load.end(), refusal.program), plan.load.end());
	const Alternative *alt = alternative_of(family, refusal.program);
	std::string stand_in;
	if (alt) {
		bool after = false;
		for (const Alternative &a : family.alternatives) {
			if (a.program == refusal.program) {
				after = true;
				continue;
			}
			bool refused_before = std::any_of(plan.refused.begin(), plan.refused.end(),
							  [&](const auto &r) { return r.first.program == a.program; });
			if (after && a.feature == alt->feature && !refused_before && has(layout.programs, a.program)) {
				stand_in = a.program;
				break;
			}
		}
	}
	if (!stand_in.empty()) {
		plan.load.push_back(stand_in);
	} else if (!plan.unavailable) {
		Refusal last = refusal;
		if (alt)
			last.reason = "no alternative for " + std::string(alt->feature) + " is left; the last one: " + last.reason;
		plan.unavailable = family_error(family, last);
	}
	plan.refused.emplace_back(std::move(refusal), stand_in);
}

// Takes the programs SONIC_BPF_REFUSE names out of PLAN, stand-ins included.
void refuse_injected(const Family &family, const Layout &layout, Plan &plan)
{
	const std::vector<std::string> injected = injected_refusals();
	ObjectPtr obj = open_object(family);
	for (bool again = true; again && !plan.unavailable;) {
		again = false;
		bpf_program *prog;
		bpf_object__for_each_program(prog, obj.get())
		{
			const std::string p = bpf_program__name(prog);
			if (has(injected, p) && has(plan.load, p)) {
				refuse(family, layout, plan, injected_refusal(p, type_of(prog)));
				again = true;
				break;
			}
		}
	}
}

// One attempt: loads the programs of PLAN and pins everything. nullopt
// when the family is loaded; else the object's load failure.
std::optional<Refusal> load_and_pin(const Bpffs &fs, const Family &family, const Layout &layout, const Plan &plan,
				    const MapSizes &sizes)
{
	const std::string name(family.name);
	ObjectPtr obj = open_object(family);
	bpf_program *prog;
	bpf_object__for_each_program(prog, obj.get())
	{
		if (int err = bpf_program__set_autoload(prog, has(plan.load, bpf_program__name(prog))))
			throw libbpf_error("select programs", err, bpf_program__name(prog));
	}
	bpf_map *map;
	bpf_map *meta = nullptr;
	bpf_object__for_each_map(map, obj.get())
	{
		if (bpf_map__is_internal(map))
			continue;
		if (is_meta(family, bpf_map__name(map))) {
			meta = map;
			continue;
		}
		if (auto size = sizes.find(std::string_view(bpf_map__name(map))); size != sizes.end())
			if (int err = bpf_map__set_max_entries(map, size->second))
				throw libbpf_error("size map", err, bpf_map__name(map));
		// libbpf reuses a compatible map a cut-short load left pinned.
		if (int err = bpf_map__set_pin_path(map, fs.map_path(bpf_map__name(map)).c_str()))
			throw libbpf_error("set map pin path", err, bpf_map__name(map));
	}
	if (auto failed = load_object(obj.get(), name + " (whole object)", "object"))
		return failed;

	bpf_object__for_each_program(prog, obj.get())
	{
		std::string path = fs.prog_path(bpf_program__name(prog));
		unlink_if_present(path);
		if (!bpf_program__autoload(prog))
			continue; // an alternative a load before this one chose
		if (int err = bpf_program__pin(prog, path.c_str()))
			throw libbpf_error("pin program", err, path);
	}

	struct sonic_meta value{};
	value.abi_version = SONIC_ABI_VERSION;
	auto hash = hash_bytes(family);
	std::memcpy(value.object_hash, hash.data(), hash.size());
	__u32 zero = 0;
	if (bpf_map_update_elem(bpf_map__fd(meta), &zero, &value, BPF_ANY) != 0)
		throw errno_error("write meta map", errno, name);
	std::string meta_path = fs.map_path(layout.meta);
	unlink_if_present(meta_path);
	if (int err = bpf_map__pin(meta, meta_path.c_str()))
		throw libbpf_error("pin meta map", err, meta_path);
	return std::nullopt;
}

std::vector<FeatureChoice> choices_among(const Family &family, const std::vector<std::string> &programs)
{
	std::vector<FeatureChoice> out;
	for (std::string_view feature : features_of(family))
		for (const Alternative &a : family.alternatives)
			if (a.feature == feature && has(programs, a.program)) {
				out.push_back({std::string(a.feature), std::string(a.value), std::string(a.program)});
				break;
			}
	return out;
}

bool sizable(const Family &family, std::string_view map)
{
	return std::find(family.sizable_maps.begin(), family.sizable_maps.end(), map) != family.sizable_maps.end();
}

// A loaded family's maps keep their size: a different one asked for is
// refused rather than silently ignored.
void check_sizes(const Bpffs &fs, const Family &family, const MapSizes &sizes)
{
	for (const auto &[map, entries] : sizes) {
		if (!sizable(family, map))
			continue;
		auto fd = open_pinned(fs.map_path(map));
		if (!fd)
			continue;
		const uint32_t have = map_capacity(fd->get());
		if (have != entries)
			throw usage_error("size map", "loaded with " + std::to_string(have) + " entries, not " +
							      std::to_string(entries),
					  map)
				.with_hint("run `sonic prog unload` first to load it again with another size");
	}
}

} // namespace

MapSizes parse_map_sizes(const std::vector<std::string> &items, std::span<const Family> families)
{
	MapSizes sizes;
	for (const std::string &item : items) {
		const size_t eq = item.find('=');
		const std::string map = item.substr(0, eq);
		bool known = false;
		std::string all;
		for (const Family &f : families)
			for (std::string_view m : f.sizable_maps) {
				known = known || m == map;
				all += (all.empty() ? "" : ", ") + std::string(m);
			}
		if (eq == std::string::npos)
			throw usage_error("parse --map-size", "expected MAP=ENTRIES", item);
		if (!known)
			throw usage_error("parse --map-size", "no sizable map '" + map + "' (the sizable maps are " +
								 (all.empty() ? "none" : all) + ")",
					  item);
		const std::string text = item.substr(eq + 1);
		uint32_t n = 0;
		auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
		if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || n < 1 || n > (1u << 24))
			throw usage_error("parse --map-size", "'" + text + "' is not a number of entries from 1 to 16777216",
					  item);
		if (sizes.count(map))
			throw usage_error("parse --map-size", "map '" + map + "' sized twice", item);
		sizes[map] = n;
	}
	return sizes;
}

std::span<const Family> builtin_families()
{
	return kFamilies;
}

const Family &builtin_family(std::string_view name)
{
	for (const Family &f : kFamilies)
		if (f.name == name)
			return f;
	throw usage_error("find BPF family", "unknown family", std::string(name));
}

Layout layout_of(const Family &family)
{
	ObjectPtr obj = open_object(family);
	Layout layout;
	bpf_program *prog;
	bpf_object__for_each_program(prog, obj.get()) layout.programs.emplace_back(bpf_program__name(prog));
	bpf_map *map;
	bpf_object__for_each_map(map, obj.get())
	{
		if (bpf_map__is_internal(map))
			continue;
		if (is_meta(family, bpf_map__name(map)))
			layout.meta = bpf_map__name(map);
		else
			layout.maps.emplace_back(bpf_map__name(map));
	}
	if (layout.meta.empty())
		throw kernel_error("inspect BPF object", "no meta map", std::string(family.name));
	return layout;
}

std::string object_hash(const Family &family)
{
	static const char digits[] = "0123456789abcdef";
	std::string hex;
	for (uint8_t b : hash_bytes(family)) {
		hex.push_back(digits[b >> 4]);
		hex.push_back(digits[b & 15]);
	}
	return hex;
}

std::string errno_name(int err)
{
	switch (err) {
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case EINVAL: return "EINVAL";
	case E2BIG: return "E2BIG";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case ENOMEM: return "ENOMEM";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EBUSY: return "EBUSY";
	case 524: return "ENOTSUPP";
	default: return "errno " + std::to_string(err);
	}
}

std::string_view load_status_name(LoadStatus status)
{
	switch (status) {
	case LoadStatus::Loaded: return "loaded";
	case LoadStatus::AlreadyLoaded: return "already_loaded";
	case LoadStatus::Unavailable: return "unavailable";
	}
	return "unknown";
}

std::string_view family_state_name(FamilyState state)
{
	switch (state) {
	case FamilyState::Absent: return "absent";
	case FamilyState::Loaded: return "loaded";
	case FamilyState::OtherBuild: return "other_build";
	case FamilyState::OtherAbi: return "other_abi";
	}
	return "unknown";
}

std::vector<std::string> injected_refusals()
{
	std::vector<std::string> out;
	const char *env = std::getenv("SONIC_BPF_REFUSE");
	std::string_view rest = env ? env : "";
	while (!rest.empty()) {
		size_t comma = rest.find(',');
		std::string_view item = rest.substr(0, comma);
		while (!item.empty() && item.front() == ' ')
			item.remove_prefix(1);
		while (!item.empty() && item.back() == ' ')
			item.remove_suffix(1);
		if (!item.empty())
			out.emplace_back(item);
		rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
	}
	return out;
}

std::optional<Refusal> probe_program(const Family &family, std::string_view program)
{
	ObjectPtr obj = open_object(family);
	bpf_program *target = nullptr;
	bpf_program *prog;
	bpf_object__for_each_program(prog, obj.get())
	{
		const bool it = program == bpf_program__name(prog);
		if (it)
			target = prog;
		if (int err = bpf_program__set_autoload(prog, it))
			throw libbpf_error("select programs", err, bpf_program__name(prog));
	}
	if (!target)
		throw usage_error("probe program", "no such program in family " + std::string(family.name),
				  std::string(program));
	if (has(injected_refusals(), program))
		return injected_refusal(std::string(program), type_of(target));
	return load_object(obj.get(), std::string(program), type_of(target));
}

FamilyLoad load_family(const Bpffs &fs, const Family &family, const MapSizes &sizes)
{
	const std::string name(family.name);
	const Layout layout = layout_of(family);
	FamilyLoad r;
	r.maps = layout.maps;
	switch (state_of(fs, family, layout)) {
	case FamilyState::Loaded:
		check_sizes(fs, family, sizes);
		r.status = LoadStatus::AlreadyLoaded;
		for (const std::string &p : layout.programs)
			if (pinned(fs.prog_path(p)))
				r.programs.push_back(p);
		r.features = choices_among(family, r.programs);
		return r;
	case FamilyState::OtherBuild:
	case FamilyState::OtherAbi:
		throw env_error("load " + name, "the pinned programs come from another sonic build", fs.root())
			.with_hint("run `sonic prog unload` first");
	case FamilyState::Absent:
		break;
	}

	Plan plan = first_plan(family, layout);
	for (;;) {
		refuse_injected(family, layout, plan);
		if (plan.unavailable)
			break;
		auto failed = load_and_pin(fs, family, layout, plan, sizes);
		if (!failed) {
			r.status = LoadStatus::Loaded;
			for (const std::string &p : layout.programs)
				if (has(plan.load, p))
					r.programs.push_back(p);
			r.features = choices_among(family, r.programs);
			r.refused = std::move(plan.refused);
			return r;
		}
		// Which of the programs did the kernel refuse? Each is tried alone.
		bool attributed = false;
		for (const std::string &p : std::vector<std::string>(plan.load))
			if (auto refusal = probe_program(family, p)) {
				refuse(family, layout, plan, std::move(*refusal));
				attributed = true;
			}
		if (!attributed)
			plan.unavailable = family_error(family, *failed);
	}
	r.status = LoadStatus::Unavailable;
	r.refused = std::move(plan.refused);
	r.error = std::move(plan.unavailable);
	r.maps.clear();
	return r;
}

bool require_family(const Bpffs &fs, const Family &family)
{
	FamilyLoad r = load_family(fs, family);
	if (r.status == LoadStatus::Unavailable)
		throw *r.error;
	return r.changed();
}

FamilyState family_state(const Bpffs &fs, const Family &family)
{
	if (!fs.present())
		return FamilyState::Absent;
	return state_of(fs, family, layout_of(family));
}

bool family_maps_usable(const Bpffs &fs, const Family &family)
{
	FamilyState st = family_state(fs, family);
	return st == FamilyState::Loaded || st == FamilyState::OtherBuild;
}

std::vector<FeatureChoice> pinned_features(const Bpffs &fs, const Family &family)
{
	std::vector<std::string> programs;
	for (const Alternative &a : family.alternatives)
		if (pinned(fs.prog_path(a.program)))
			programs.emplace_back(a.program);
	return choices_among(family, programs);
}

std::vector<std::string> unpin_family(const Bpffs &fs, const Family &family)
{
	std::vector<std::string> removed;
	auto remove = [&](const std::string &path) {
		if (unlink(path.c_str()) == 0)
			removed.push_back(path);
		else if (errno != ENOENT)
			throw errno_error("remove pinned object", errno, path);
	};
	Layout layout = layout_of(family);
	// The meta map goes first: from here on the family counts as not loaded.
	remove(fs.map_path(layout.meta));
	const std::string prefix = std::string(family.name) + "_";
	for (const std::string &l : fs.list("link"))
		if (l.compare(0, prefix.size(), prefix) == 0)
			remove(fs.link_path(l));
	for (const std::string &p : layout.programs)
		remove(fs.prog_path(p));
	for (const std::string &m : layout.maps)
		remove(fs.map_path(m));
	return removed;
}

} // namespace sonic::bpf
