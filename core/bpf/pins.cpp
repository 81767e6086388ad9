#include "bpf/pins.hpp"

#include "bpf/libbpf.hpp"
#include "out/error.hpp"

#include <bpf/libbpf.h>
#include <cerrno>
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

size_t read_per_cpu(int map_fd, std::vector<uint8_t> &out, size_t value_size, const std::string &what)
{
	int ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0)
		throw kernel_error(what, "cannot count possible CPUs");
	out.assign(static_cast<size_t>(ncpus) * value_size, 0);
	__u32 zero = 0;
	if (bpf_map_lookup_elem(map_fd, &zero, out.data()) != 0)
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
