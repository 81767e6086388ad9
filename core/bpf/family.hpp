// BPF program families compiled into sonic (accel, splice and steer) and
// the generic load / pin / unpin of one family.
//
// A family's programs are pinned as <bpffs>/prog/<program>, its maps as
// <bpffs>/map/<map>, and its links as <bpffs>/link/<family>_<what>. Every
// name starts with the family name. The family's meta map is written and
// pinned last: it marks a complete load of this exact object, so a load cut
// short (even by SIGKILL) is finished by the next one and removed by unload.
#pragma once

#include "bpf/bpffs.hpp"

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::bpf {

struct Family {
	std::string_view name;
	std::string_view summary;
	const void *(*elf_bytes)(size_t *size);
};

// The families compiled into this executable, in load order.
std::span<const Family> builtin_families();
const Family &builtin_family(std::string_view name);

struct Layout {
	std::vector<std::string> programs;
	std::vector<std::string> maps; // without the meta map
	std::string meta;              // <family>_meta
};

Layout layout_of(const Family &family);

// SHA-256 of the embedded object, hex.
std::string object_hash(const Family &family);

struct LoadResult {
	bool changed = false;
	std::vector<std::string> programs;
	std::vector<std::string> maps;
};

// Loads and pins the family; does nothing when this build's object is
// already pinned completely. Throws a kernel error (exit 2) with libbpf's
// reason when the kernel rejects a program.
LoadResult load_family(const Bpffs &fs, const Family &family);

enum class FamilyState {
	Absent,   // nothing pinned, or a load cut short
	Loaded,   // this build's object, pinned completely
	OtherBuild, // another build's object with the same map ABI
	OtherAbi,   // another build's object whose maps differ
};

FamilyState family_state(const Bpffs &fs, const Family &family);

// Whether this build's object is pinned completely.
bool family_loaded(const Bpffs &fs, const Family &family);

// Whether the pinned maps have this build's layout (this or another build
// with the same ABI), so they can be read and drained.
bool family_maps_usable(const Bpffs &fs, const Family &family);

// Removes the family's links, programs and maps from bpffs. Returns the
// paths removed.
std::vector<std::string> unpin_family(const Bpffs &fs, const Family &family);

} // namespace sonic::bpf
