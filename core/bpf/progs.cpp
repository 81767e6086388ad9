#include "bpf/progs.hpp"

#include "bpf/fd.hpp"
#include "bpf/libbpf.hpp"
#include "bpf/pins.hpp"
#include "sys/cgroup.hpp"
#include "sys/fs.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <cstring>
#include <map>
#include <net/if.h>

// uapi headers older than Linux 6.10 lack the sockmap link type.
#ifndef BPF_LINK_TYPE_SOCKMAP
#define SONIC_BPF_LINK_TYPE_SOCKMAP 14
#else
#define SONIC_BPF_LINK_TYPE_SOCKMAP BPF_LINK_TYPE_SOCKMAP
#endif

namespace sonic::bpf {

namespace {

std::string attach_type_name(uint32_t type)
{
	const char *s = libbpf_bpf_attach_type_str(static_cast<enum bpf_attach_type>(type));
	return s ? s : "attach_type_" + std::to_string(type);
}

std::string map_name_of(uint32_t id)
{
	Fd fd(bpf_map_get_fd_by_id(id));
	if (!fd)
		return "map " + std::to_string(id);
	struct bpf_map_info info{};
	__u32 len = sizeof(info);
	if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0)
		return "map " + std::to_string(id);
	return info.name;
}

// prog id -> attach points, from the links pinned under <root>/link and
// the map attachments of sonic's socket maps.
std::map<uint32_t, std::vector<std::string>> attach_points(const Bpffs &fs)
{
	std::map<uint32_t, std::vector<std::string>> out;
	for (const std::string &name : fs.list("link")) {
		auto fd = open_pinned(fs.link_path(name));
		if (!fd)
			continue;
		struct bpf_link_info info{};
		__u32 len = sizeof(info);
		if (bpf_obj_get_info_by_fd(fd->get(), &info, &len) != 0)
			continue;
		std::string where;
		if (info.type == BPF_LINK_TYPE_CGROUP) {
			std::string path = sys::cgroup_path_of(info.cgroup.cgroup_id);
			where = "cgroup " + (path.empty() ? "id " + std::to_string(info.cgroup.cgroup_id) + " (gone)" : path) +
				" (" + attach_type_name(info.cgroup.attach_type) + ")";
		} else if (info.type == SONIC_BPF_LINK_TYPE_SOCKMAP) {
			// union { struct { __u32 map_id; __u32 attach_type; } sockmap; }
			__u32 raw[2];
			std::memcpy(raw, &info.cgroup, sizeof(raw));
			where = "map " + map_name_of(raw[0]) + " (" + attach_type_name(raw[1]) + ")";
		} else if (info.type == BPF_LINK_TYPE_XDP) {
			char ifname[IF_NAMESIZE] = {};
			const XdpState st = xdp_state(static_cast<int>(info.xdp.ifindex));
			where = info.xdp.ifindex == 0		 ? std::string("no interface (gone)")
				: if_indextoname(info.xdp.ifindex, ifname) ? "dev " + std::string(ifname)
									   : "ifindex " + std::to_string(info.xdp.ifindex);
			if (st.mode && st.prog_id == info.prog_id)
				where += " (xdp " + std::string(xdp_mode_name(*st.mode)) + ")";
		} else {
			where = "link " + name;
		}
		out[info.prog_id].push_back(where + ", link " + std::to_string(info.id));
	}
	for (const std::string &name : fs.list("map")) {
		auto fd = open_pinned(fs.map_path(name));
		if (!fd)
			continue;
		struct bpf_map_info info{};
		__u32 len = sizeof(info);
		if (bpf_obj_get_info_by_fd(fd->get(), &info, &len) != 0)
			continue;
		if (info.type != BPF_MAP_TYPE_SOCKHASH && info.type != BPF_MAP_TYPE_SOCKMAP)
			continue;
		for (enum bpf_attach_type t : {BPF_SK_MSG_VERDICT, BPF_SK_SKB_STREAM_VERDICT, BPF_SK_SKB_VERDICT}) {
			__u32 ids[8] = {};
			__u32 count = 8;
			if (bpf_prog_query(fd->get(), t, 0, nullptr, ids, &count) != 0)
				continue;
			for (__u32 i = 0; i < count; ++i) {
				std::string where = "map " + name + " (" + attach_type_name(t) + ")";
				auto &v = out[ids[i]];
				bool dup = false;
				for (const std::string &w : v)
					dup = dup || w.rfind(where, 0) == 0;
				if (!dup)
					v.push_back(where);
			}
		}
	}
	return out;
}

std::string hex_tag(const unsigned char *tag, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	std::string s;
	for (size_t i = 0; i < n; ++i) {
		s.push_back(digits[tag[i] >> 4]);
		s.push_back(digits[tag[i] & 15]);
	}
	return s;
}

} // namespace

bool bpf_stats_enabled()
{
	return sys::read_int_file("/proc/sys/kernel/bpf_stats_enabled").value_or(0) != 0;
}

std::vector<ProgramInfo> list_programs(const Bpffs &fs)
{
	std::vector<ProgramInfo> progs;
	if (!fs.present())
		return progs;
	const bool stats = bpf_stats_enabled();
	auto points = attach_points(fs);
	for (const std::string &name : fs.list("prog")) {
		auto fd = open_pinned(fs.prog_path(name));
		if (!fd)
			continue;
		struct bpf_prog_info info{};
		__u32 len = sizeof(info);
		if (bpf_obj_get_info_by_fd(fd->get(), &info, &len) != 0)
			throw errno_error("read program info", errno, fs.prog_path(name));
		ProgramInfo p;
		p.id = info.id;
		p.name = name;
		const char *type = libbpf_bpf_prog_type_str(static_cast<enum bpf_prog_type>(info.type));
		p.type = type ? type : "type_" + std::to_string(info.type);
		p.tag = hex_tag(info.tag, sizeof(info.tag));
		p.pinned = fs.prog_path(name);
		if (auto it = points.find(info.id); it != points.end())
			p.attached = it->second;
		if (stats) {
			p.run_count = info.run_cnt;
			p.run_time_ns = info.run_time_ns;
		}
		progs.push_back(std::move(p));
	}
	return progs;
}

} // namespace sonic::bpf
