// The plumbing every family's userspace half stands on, held once (in the
// way katran's BaseBpfAdapter holds it for katran): a family's pinned
// programs, maps and links under one bpffs root, cgroup and socket-map
// attachments as pinned links, per-CPU counter sums and key walks.
//
// A family's own file (accel.cpp, splice.cpp, steer.cpp) keeps only what is
// its own: its maps' meaning and its verbs.
#pragma once

#include "bpf/bpffs.hpp"
#include "bpf/fd.hpp"
#include "out/error.hpp"

#include <algorithm>
#include <bpf/bpf.h>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

// The name of program or map NAME of the skeleton SKEL (accel_bpf, ...):
// a name the generated skeleton does not have fails to compile.
#define SONIC_PROG(skel, name) ((void)sizeof(((struct skel *)nullptr)->progs.name), std::string_view(#name))
#define SONIC_MAP(skel, name) ((void)sizeof(((struct skel *)nullptr)->maps.name), std::string_view(#name))

namespace sonic::bpf {

enum class XdpMode { Native, Generic };

std::string_view xdp_mode_name(XdpMode mode);

// What an interface runs at XDP, as netlink reports it.
struct XdpState {
	uint32_t prog_id = 0; // 0: nothing attached
	std::optional<XdpMode> mode;
};

XdpState xdp_state(int ifindex);

// The kernel error (exit 2) of a failed XDP attach, with what it means.
Error xdp_attach_error(int err, XdpMode mode, const std::string &ifname);

// Which link a link is: its id, its program, and where it is attached.
struct LinkInfo {
	uint32_t id = 0;
	uint32_t prog_id = 0;
	uint32_t type = 0;      // BPF_LINK_TYPE_*
	uint64_t cgroup_id = 0; // cgroup links; 0 once the cgroup is gone
	int ifindex = 0;        // XDP links; 0 once the interface is gone
};

LinkInfo link_info(int link_fd);
// The same for a pinned link; nullopt when nothing is pinned at PATH.
std::optional<LinkInfo> link_info(const std::string &path);

class Pins {
public:
	Pins(const Bpffs &fs, std::string_view family) : fs_(fs), family_(family) {}

	const Bpffs &fs() const { return fs_; }

	// A pinned program or map; an environment error (exit 3) naming it and
	// the family when it is missing.
	Fd prog(std::string_view name) const;
	Fd map(std::string_view name) const;

	// Whether a link is pinned as <root>/link/LINK.
	bool linked(std::string_view link) const;
	// Attaches PROG to the cgroup v2 directory CGROUP as a link pinned as
	// LINK. False when LINK is pinned already.
	bool attach_cgroup(int prog_fd, const std::string &cgroup, enum bpf_attach_type type,
			   std::string_view link) const;
	// Attaches PROG to a socket map: a link pinned as LINK where the kernel
	// has sockmap links (6.10+), else a map attachment, which lives as long
	// as the map. False when PROG is attached there already.
	bool attach_sockmap(int prog_fd, int map_fd, enum bpf_attach_type type, std::string_view link) const;
	bool sockmap_attached(int prog_fd, int map_fd, enum bpf_attach_type type, std::string_view link) const;
	// Attaches an XDP program to interface IFINDEX in MODE as a link pinned
	// as LINK. Returns 0, or the errno of the attach: EOPNOTSUPP when the
	// driver has no native XDP, EBUSY when another XDP program is there
	// (xdp_attach_error says so).
	int attach_xdp(int prog_fd, int ifindex, XdpMode mode, std::string_view link) const;
	// Removes a link's pin (which detaches it unless a process holds it).
	// Whether it was there.
	bool unpin_link(std::string_view link) const;
	// Names of the pinned links that start with PREFIX.
	std::vector<std::string> links(std::string_view prefix) const;

private:
	Bpffs fs_;
	std::string family_;
};

// Removes a pin; whether it was there. Throws for anything but ENOENT.
bool unpin(const std::string &path);

// Pins an object (a link) at PATH.
void pin(int fd, const std::string &path);

// Reads the per-CPU values of KEY of a per-CPU array into OUT, which holds
// room for VALUE_SIZE bytes per possible CPU. Returns the CPU count.
size_t read_per_cpu(int map_fd, std::vector<uint8_t> &out, size_t value_size, const std::string &what,
		    uint32_t key = 0);

// Every CPU's counters of key 0 of a per-CPU array of STATS (a struct of
// one `__u64 counter[N]`), summed.
template <typename Stats> Stats sum_per_cpu(int map_fd, const std::string &what)
{
	std::vector<uint8_t> raw;
	const size_t ncpus = read_per_cpu(map_fd, raw, sizeof(Stats), what);
	Stats total{};
	for (size_t cpu = 0; cpu < ncpus; ++cpu) {
		Stats one;
		std::memcpy(&one, raw.data() + cpu * sizeof(Stats), sizeof(Stats));
		for (size_t i = 0; i < std::size(total.counter); ++i)
			total.counter[i] += one.counter[i];
	}
	return total;
}

// Entries of any map (its key size read from the kernel).
uint64_t count_keys(int map_fd);

// Every key of a hash map.
template <typename Key> std::vector<Key> map_keys(int map_fd)
{
	std::vector<Key> keys;
	Key cur{}, next{};
	void *prev = nullptr;
	while (bpf_map_get_next_key(map_fd, prev, &next) == 0) {
		keys.push_back(next);
		cur = next;
		prev = &cur;
	}
	return keys;
}

// Turns the entries HAVE of a hash map into WANT: deletes the keys of HAVE
// not in WANT, and writes the keys of WANT not in HAVE with VALUE. Returns
// whether anything changed; OP names a write that fails.
bool replace_key_bytes(int map_fd, const std::vector<std::vector<uint8_t>> &have, const std::vector<std::vector<uint8_t>> &want,
		  const void *value, const std::string &op);

template <typename Key, typename Value>
bool replace_keys(int map_fd, const std::vector<Key> &have, const std::vector<Key> &want, const Value &value,
		  const std::string &op)
{
	auto bytes = [](const std::vector<Key> &keys) {
		std::vector<std::vector<uint8_t>> out;
		for (const Key &k : keys) {
			const auto *p = reinterpret_cast<const uint8_t *>(&k);
			out.emplace_back(p, p + sizeof(Key));
		}
		return out;
	};
	return replace_key_bytes(map_fd, bytes(have), bytes(want), &value, op);
}

// Deletes every entry of a hash map.
void clear_map(int map_fd);

// A map's key or value, as bytes.
using RawBytes = std::vector<uint8_t>;

template <typename T> RawBytes bytes_of(const T &v)
{
	const auto *p = reinterpret_cast<const uint8_t *>(&v);
	return RawBytes(p, p + sizeof(T));
}

template <typename T> T from_bytes(const RawBytes &b)
{
	T v{};
	std::memcpy(&v, b.data(), std::min(b.size(), sizeof(T)));
	return v;
}

// Every entry of a hash map or LPM trie (key and value sizes read from the
// kernel), in the kernel's order.
std::vector<std::pair<RawBytes, RawBytes>> map_entries(int map_fd);

// The entries a map is made for: its max_entries.
uint32_t map_capacity(int map_fd);

// Turns the map's entries into WANT: writes the entries whose value differs,
// then deletes the keys WANT lacks. Returns whether anything changed. A map
// that is full fails with the error of `update_entry`.
bool sync_entries(int map_fd, const std::vector<std::pair<RawBytes, RawBytes>> &want, const std::string &map_name);

// Writes one entry; a full map (E2BIG, ENOSPC) is a usage error (exit 1)
// naming the map and its size, other failures name OP.
void update_entry(int map_fd, const void *key, const void *value, uint64_t flags, const std::string &map_name,
		  const std::string &op);

} // namespace sonic::bpf
