// BPF program families compiled into sonic (accel, splice, steer, fw) and the
// generic load / pin / unpin of one family.
//
// A family's programs are pinned as <bpffs>/prog/<program>, its maps as
// <bpffs>/map/<map>, and its links as <bpffs>/link/<family>_<what>. Every
// name starts with the family name. The family's meta map is written and
// pinned last: it marks a complete load of this exact object, so a load cut
// short (even by SIGKILL) is finished by the next one and removed by unload.
//
// Every family stands alone: a program the kernel refuses (lockdown, an LSM,
// an old kernel) makes only its own family unavailable, with the program,
// the errno and a hint. A family may list alternatives for one feature
// (accel's release path: the sockmap iterator, else a per-socket program run
// from userspace); the first alternative the kernel accepts is loaded.
#pragma once

#include "bpf/bpffs.hpp"
#include "out/error.hpp"

#include <cstddef>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::bpf {

// One way to provide a family's FEATURE: PROGRAM, known as VALUE ("iterator").
// A family's alternatives for a feature are listed in order of preference;
// the programs named here are loaded only when chosen.
struct Alternative {
	std::string_view feature;
	std::string_view program;
	std::string_view value;
};

struct Family {
	std::string_view name;
	std::string_view summary;
	const void *(*elf_bytes)(size_t *size);
	std::span<const Alternative> alternatives = {};
	// The maps whose number of entries `prog load --map-size MAP=N` sets.
	std::span<const std::string_view> sizable_maps = {};
};

// Entries wanted per map, by map name.
using MapSizes = std::map<std::string, uint32_t, std::less<>>;

// Reads `--map-size` items, "MAP=N": MAP a sizable map of one of FAMILIES,
// N from 1 to 16777216. Throws a usage error (exit 1) naming a bad item.
MapSizes parse_map_sizes(const std::vector<std::string> &items, std::span<const Family> families);

// The families compiled into this executable, in load order.
std::span<const Family> builtin_families();
// Throws a usage error (exit 1) naming an unknown family.
const Family &builtin_family(std::string_view name);

struct Layout {
	std::vector<std::string> programs; // every program, alternatives included
	std::vector<std::string> maps;     // without the meta map
	std::string meta;                  // <family>_meta
};

Layout layout_of(const Family &family);

// SHA-256 of the embedded object, hex.
std::string object_hash(const Family &family);

// A program the kernel would not load.
struct Refusal {
	std::string program;
	std::string type;   // "tracing", "sk_msg", ...
	int err = 0;        // positive errno
	std::string reason; // libbpf's one-line reason (verifier complaint included)
	std::string hint;   // what it means, in sonic's terms
	std::string detail; // libbpf's full log (the verifier log), for -d
	bool injected = false; // refused by SONIC_BPF_REFUSE, not by the kernel
};

// "EPERM", "EINVAL", ... ("errno 524" for ENOTSUPP and unnamed ones).
std::string errno_name(int err);

// A feature of a loaded family and the alternative that provides it.
struct FeatureChoice {
	std::string feature;
	std::string value;
	std::string program;
};

enum class LoadStatus { Loaded, AlreadyLoaded, Unavailable };
std::string_view load_status_name(LoadStatus status);

struct FamilyLoad {
	LoadStatus status = LoadStatus::Unavailable;
	std::vector<std::string> programs; // pinned
	std::vector<std::string> maps;
	std::vector<FeatureChoice> features;
	// Programs the kernel refused on the way, each with the alternative
	// that stood in for it, if any.
	std::vector<std::pair<Refusal, std::string>> refused;
	// Unavailable: why, naming the family and the program (exit 2).
	std::optional<Error> error;

	bool changed() const { return status == LoadStatus::Loaded; }
};

// Loads and pins FAMILY unless this build's object is pinned completely.
// A program the kernel refuses is not thrown: the family falls back to the
// program's alternative, or comes back Unavailable with the reason. Throws
// an environment error (exit 3) when another sonic build's objects are
// pinned there, and for failures of bpffs itself. The caller holds the
// bpffs lock.
// SIZES sets the entries of the family's sizable maps; for a family that
// is loaded already, a size that differs from the pinned map's is a usage
// error (the map would have to be made again).
FamilyLoad load_family(const Bpffs &fs, const Family &family, const MapSizes &sizes = {});

// For the commands that need a family (accel enable, tproxy add, sonic run):
// loads it as above, or throws the kernel error (exit 2) that names the
// family, the program and why. Returns whether it was loaded by this call.
bool require_family(const Bpffs &fs, const Family &family);

// The programs the environment marks refused: SONIC_BPF_REFUSE holds a
// comma-separated list of program names that sonic treats as refused by the
// kernel (EPERM), for tests of the fallback paths on any kernel.
std::vector<std::string> injected_refusals();

// Loads PROGRAM of FAMILY alone (its maps created but not pinned) to see
// whether this kernel accepts it. nullopt: accepted.
std::optional<Refusal> probe_program(const Family &family, std::string_view program);

enum class FamilyState {
	Absent,     // nothing pinned, or a load cut short
	Loaded,     // this build's object, pinned completely
	OtherBuild, // another build's object with the same map ABI
	OtherAbi,   // another build's object whose maps differ
};

std::string_view family_state_name(FamilyState state);

FamilyState family_state(const Bpffs &fs, const Family &family);

// Whether the pinned maps have this build's layout (this or another build
// with the same ABI), so they can be read and drained.
bool family_maps_usable(const Bpffs &fs, const Family &family);

// The alternatives in use by the pinned family: one per feature, whichever
// program of the feature is pinned.
std::vector<FeatureChoice> pinned_features(const Bpffs &fs, const Family &family);

// Removes the family's links, programs and maps from bpffs. Returns the
// paths removed.
std::vector<std::string> unpin_family(const Bpffs &fs, const Family &family);

} // namespace sonic::bpf
