#include "bpf/family.hpp"

#include "accel.skel.h"
#include "splice.skel.h"
#include "steer.skel.h"
#include "bpf/libbpf.hpp"
#include "out/error.hpp"
#include "sonic_abi.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <array>
#include <cerrno>
#include <cstring>
#include <gnutls/crypto.h>
#include <memory>
#include <unistd.h>

namespace sonic::bpf {

namespace {

const void *accel_elf(size_t *size) { return accel_bpf__elf_bytes(size); }
const void *splice_elf(size_t *size) { return splice_bpf__elf_bytes(size); }
const void *steer_elf(size_t *size) { return steer_bpf__elf_bytes(size); }

const Family kFamilies[] = {
	{"accel", "local socket acceleration (sockops + sk_msg over a SOCKHASH)", accel_elf},
	{"splice", "kernel TCP tunnels (sk_skb verdict over a SOCKHASH)", splice_elf},
	{"steer", "transparent steering (tc + sk_assign, cgroup connect + getsockopt)", steer_elf},
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
	for (const std::string &p : layout.programs)
		if (access(fs.prog_path(p).c_str(), F_OK) != 0)
			return FamilyState::Absent;
	for (const std::string &m : layout.maps)
		if (access(fs.map_path(m).c_str(), F_OK) != 0)
			return FamilyState::Absent;
	return FamilyState::Loaded;
}

} // namespace

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

FamilyState family_state(const Bpffs &fs, const Family &family)
{
	if (!fs.present())
		return FamilyState::Absent;
	return state_of(fs, family, layout_of(family));
}

bool family_loaded(const Bpffs &fs, const Family &family)
{
	return family_state(fs, family) == FamilyState::Loaded;
}

bool family_maps_usable(const Bpffs &fs, const Family &family)
{
	FamilyState st = family_state(fs, family);
	return st == FamilyState::Loaded || st == FamilyState::OtherBuild;
}

LoadResult load_family(const Bpffs &fs, const Family &family)
{
	const std::string name(family.name);
	Layout layout = layout_of(family);
	LoadResult result;
	result.programs = layout.programs;
	result.maps = layout.maps;
	switch (state_of(fs, family, layout)) {
	case FamilyState::Loaded:
		return result;
	case FamilyState::OtherBuild:
	case FamilyState::OtherAbi:
		throw env_error("load " + name, "the pinned programs come from another sonic build", fs.root())
			.with_hint("run `sonic prog unload` first");
	case FamilyState::Absent:
		break;
	}

	ObjectPtr obj = open_object(family);
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
		// libbpf reuses a compatible map a cut-short load left pinned.
		if (int err = bpf_map__set_pin_path(map, fs.map_path(bpf_map__name(map)).c_str()))
			throw libbpf_error("set map pin path", err, bpf_map__name(map));
	}
	take_libbpf_log();
	if (int err = bpf_object__load(obj.get()))
		throw libbpf_error("load " + name + " programs", err, name);

	bpf_program *prog;
	bpf_object__for_each_program(prog, obj.get())
	{
		std::string path = fs.prog_path(bpf_program__name(prog));
		unlink_if_present(path);
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
	result.changed = true;
	return result;
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
