#include "bpf/pins.hpp"

#include "bpf/libbpf.hpp"
#include "out/error.hpp"

#include <bpf/libbpf.h>
#include <cerrno>
#include <cstring>
#include <linux/if_link.h>
#include <map>
#include <fcntl.h>
#include <unistd.h>

namespace sonic::bpf {

namespace {

// The kernel has no sockmap links before 6.10: EINVAL (unknown attach type
// for a link) or ENOTSUPP.
bool no_sockmap_links(int err)
{
	return err == EINVAL || err == EOPNOTSUPP || err == 524 /* ENOTSUPP */;
}

} // namespace

Fd Pins::prog(std::string_view name) const
{
	return open_pinned_or_throw(fs_.prog_path(name), "open " + family_ + " program");
}

Fd Pins::map(std::string_view name) const
{
	return open_pinned_or_throw(fs_.map_path(name), "open " + family_ + " map");
}

bool Pins::linked(std::string_view link) const
{
	return open_pinned(fs_.link_path(link)).has_value();
}

bool Pins::attach_cgroup(int prog_fd, const std::string &cgroup, enum bpf_attach_type type, std::string_view link) const
{
	const std::string path = fs_.link_path(link);
	if (open_pinned(path))
		return false;
	Fd cg(open(cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (!cg)
		throw errno_error("open cgroup", errno, cgroup);
	Fd made(bpf_link_create(prog_fd, cg.get(), type, nullptr));
	if (!made)
		throw errno_error("attach " + std::string(link), errno, cgroup);
	pin(made.get(), path);
	return true;
}

bool Pins::sockmap_attached(int prog_fd, int map_fd, enum bpf_attach_type type, std::string_view link) const
{
	if (linked(link))
		return true;
	__u32 ids[4] = {};
	__u32 count = 4;
	return bpf_prog_query(map_fd, type, 0, nullptr, ids, &count) == 0 && count > 0 && ids[0] == prog_id(prog_fd);
}

bool Pins::attach_sockmap(int prog_fd, int map_fd, enum bpf_attach_type type, std::string_view link) const
{
	if (sockmap_attached(prog_fd, map_fd, type, link))
		return false;
	const std::string op = "attach " + std::string(link);
	Fd made(bpf_link_create(prog_fd, map_fd, type, nullptr));
	if (made) {
		pin(made.get(), fs_.link_path(link));
		return true;
	}
	if (!no_sockmap_links(errno))
		throw errno_error(op, errno);
	if (bpf_prog_attach(prog_fd, map_fd, type, 0) != 0)
		throw errno_error(op, errno);
	return true;
}

int Pins::attach_xdp(int prog_fd, int ifindex, XdpMode mode, std::string_view link) const
{
	LIBBPF_OPTS(bpf_link_create_opts, opts);
	opts.flags = mode == XdpMode::Native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
	Fd made(bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts));
	if (!made)
		return errno;
	pin(made.get(), fs_.link_path(link));
	return 0;
}

bool Pins::unpin_link(std::string_view link) const
{
	return unpin(fs_.link_path(link));
}

std::vector<std::string> Pins::links(std::string_view prefix) const
{
	std::vector<std::string> out;
	for (const std::string &name : fs_.list("link"))
		if (name.compare(0, prefix.size(), prefix) == 0)
			out.push_back(name);
	return out;
}

std::string_view xdp_mode_name(XdpMode mode)
{
	return mode == XdpMode::Native ? "native" : "generic";
}

Error xdp_attach_error(int err, XdpMode mode, const std::string &ifname)
{
	Error e = kernel_error("attach XDP in " + std::string(xdp_mode_name(mode)) + " mode", std::strerror(err), ifname);
	if (err == EOPNOTSUPP)
		e.with_hint("the driver of " + ifname + " has no native XDP; use mode generic");
	else if (err == EBUSY || err == EEXIST)
		e.with_hint("another XDP program is attached to " + ifname + " (ip link show dev " + ifname + ")");
	else if (err == ERANGE || err == EINVAL)
		e.with_hint("the MTU or the features of " + ifname + " rule out XDP in this mode (ip -d link show dev " +
			    ifname + ")");
	return e;
}

XdpState xdp_state(int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, opts);
	XdpState st;
	if (bpf_xdp_query(ifindex, 0, &opts) != 0)
		return st;
	if (opts.drv_prog_id) {
		st.prog_id = opts.drv_prog_id;
		st.mode = XdpMode::Native;
	} else if (opts.skb_prog_id) {
		st.prog_id = opts.skb_prog_id;
		st.mode = XdpMode::Generic;
	} else {
		st.prog_id = opts.prog_id ? opts.prog_id : opts.hw_prog_id;
	}
	return st;
}

LinkInfo link_info(int link_fd)
{
	struct bpf_link_info info{};
	__u32 len = sizeof(info);
	if (bpf_obj_get_info_by_fd(link_fd, &info, &len) != 0)
		throw errno_error("read link info", errno);
	LinkInfo out;
	out.id = info.id;
	out.prog_id = info.prog_id;
	out.type = info.type;
	if (info.type == BPF_LINK_TYPE_CGROUP)
		out.cgroup_id = info.cgroup.cgroup_id;
	if (info.type == BPF_LINK_TYPE_XDP)
		out.ifindex = static_cast<int>(info.xdp.ifindex);
	return out;
}

std::optional<LinkInfo> link_info(const std::string &path)
{
	auto fd = open_pinned(path);
	if (!fd)
		return std::nullopt;
	return link_info(fd->get());
}

bool unpin(const std::string &path)
{
	if (unlink(path.c_str()) == 0)
		return true;
	if (errno != ENOENT)
		throw errno_error("remove pinned object", errno, path);
	return false;
}

void pin(int fd, const std::string &path)
{
	if (bpf_obj_pin(fd, path.c_str()) != 0)
		throw errno_error("pin link", errno, path);
}

size_t read_per_cpu(int map_fd, std::vector<uint8_t> &out, size_t value_size, const std::string &what, uint32_t key)
{
	int ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0)
		throw kernel_error(what, "cannot count possible CPUs");
	out.assign(static_cast<size_t>(ncpus) * value_size, 0);
	if (bpf_map_lookup_elem(map_fd, &key, out.data()) != 0)
		throw errno_error(what, errno);
	return static_cast<size_t>(ncpus);
}

uint64_t count_keys(int map_fd)
{
	struct bpf_map_info info{};
	__u32 len = sizeof(info);
	if (bpf_obj_get_info_by_fd(map_fd, &info, &len) != 0)
		throw errno_error("inspect map", errno);
	std::vector<uint8_t> cur(info.key_size), next(info.key_size);
	uint64_t n = 0;
	void *prev = nullptr;
	while (bpf_map_get_next_key(map_fd, prev, next.data()) == 0) {
		++n;
		cur.swap(next);
		prev = cur.data();
	}
	return n;
}

bool replace_key_bytes(int map_fd, const std::vector<std::vector<uint8_t>> &have, const std::vector<std::vector<uint8_t>> &want,
		  const void *value, const std::string &op)
{
	auto in = [](const std::vector<std::vector<uint8_t>> &list, const std::vector<uint8_t> &k) {
		return std::find(list.begin(), list.end(), k) != list.end();
	};
	bool changed = false;
	for (const auto &k : have)
		if (!in(want, k) && bpf_map_delete_elem(map_fd, k.data()) == 0)
			changed = true;
	for (const auto &k : want) {
		if (in(have, k))
			continue;
		if (bpf_map_update_elem(map_fd, k.data(), value, BPF_ANY) != 0)
			throw errno_error(op, errno);
		changed = true;
	}
	return changed;
}

void clear_map(int map_fd)
{
	struct bpf_map_info info{};
	__u32 len = sizeof(info);
	if (bpf_obj_get_info_by_fd(map_fd, &info, &len) != 0)
		throw errno_error("inspect map", errno);
	std::vector<uint8_t> key(info.key_size);
	while (bpf_map_get_next_key(map_fd, nullptr, key.data()) == 0)
		if (bpf_map_delete_elem(map_fd, key.data()) != 0)
			break;
}

} // namespace sonic::bpf

namespace sonic::bpf {

namespace {

struct bpf_map_info map_info(int map_fd)
{
	struct bpf_map_info info{};
	__u32 len = sizeof(info);
	if (bpf_obj_get_info_by_fd(map_fd, &info, &len) != 0)
		throw errno_error("inspect map", errno);
	return info;
}

} // namespace

std::vector<std::pair<RawBytes, RawBytes>> map_entries(int map_fd)
{
	const struct bpf_map_info info = map_info(map_fd);
	std::vector<std::pair<RawBytes, RawBytes>> out;
	RawBytes cur(info.key_size), next(info.key_size);
	void *prev = nullptr;
	while (bpf_map_get_next_key(map_fd, prev, next.data()) == 0) {
		RawBytes value(info.value_size);
		// A key deleted since the walk found it is skipped.
		if (bpf_map_lookup_elem(map_fd, next.data(), value.data()) == 0)
			out.emplace_back(next, std::move(value));
		cur = next;
		prev = cur.data();
	}
	return out;
}

uint32_t map_capacity(int map_fd)
{
	return map_info(map_fd).max_entries;
}

void update_entry(int map_fd, const void *key, const void *value, uint64_t flags, const std::string &map_name,
		  const std::string &op)
{
	if (bpf_map_update_elem(map_fd, key, value, flags) == 0)
		return;
	const int err = errno;
	if (err == E2BIG || err == ENOSPC) {
		const uint32_t size = map_capacity(map_fd);
		throw usage_error(op, "the map " + map_name + " is full (" + std::to_string(size) + " entries)", map_name)
			.with_hint("remove entries, or load the family with a larger map: sonic prog unload; sonic prog load "
				   "--map-size " + map_name + "=N");
	}
	throw errno_error(op, err, map_name);
}

bool sync_entries(int map_fd, const std::vector<std::pair<RawBytes, RawBytes>> &want, const std::string &map_name)
{
	std::map<RawBytes, RawBytes> have, wanted;
	for (auto &[key, value] : map_entries(map_fd))
		have.emplace(std::move(key), std::move(value));
	bool changed = false;
	for (const auto &[key, value] : want) {
		wanted.emplace(key, value);
		auto it = have.find(key);
		if (it != have.end() && it->second == value)
			continue;
		update_entry(map_fd, key.data(), value.data(), BPF_ANY, map_name, "update " + map_name);
		changed = true;
	}
	for (const auto &[key, value] : have)
		if (!wanted.count(key)) {
			if (bpf_map_delete_elem(map_fd, key.data()) != 0 && errno != ENOENT)
				throw errno_error("delete from " + map_name, errno, map_name);
			changed = true;
		}
	return changed;
}

} // namespace sonic::bpf
