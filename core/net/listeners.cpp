#include "net/listeners.hpp"

#include "sys/fs.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <dirent.h>
#include <sstream>
#include <sys/socket.h>
#include <unistd.h>

namespace sonic::net {

namespace {

constexpr std::string_view kListenState = "0A"; // TCP_LISTEN

// An address as /proc/net/tcp prints it: 8 hex digits per 32-bit word, each
// word in host byte order.
bool parse_proc_addr(std::string_view hex, int family, IpAddr &out)
{
	const size_t words = family == AF_INET ? 1 : 4;
	if (hex.size() != words * 8)
		return false;
	uint8_t raw[16] = {};
	for (size_t w = 0; w < words; ++w) {
		uint32_t v = 0;
		auto [p, ec] = std::from_chars(hex.data() + w * 8, hex.data() + w * 8 + 8, v, 16);
		if (ec != std::errc() || p != hex.data() + w * 8 + 8)
			return false;
		std::memcpy(raw + w * 4, &v, 4);
	}
	if (family == AF_INET) {
		uint32_t be;
		std::memcpy(&be, raw, 4);
		out = ipv4_mapped(be);
		return true;
	}
	std::memcpy(out.bytes.data(), raw, 16);
	static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	out.family = std::memcmp(raw, kMapped, 12) == 0 ? AF_INET : AF_INET6;
	return true;
}

// The inode of the socket behind an fd link ("socket:[12345]"), or 0.
uint64_t socket_inode(std::string_view link)
{
	constexpr std::string_view kPrefix = "socket:[";
	if (link.substr(0, kPrefix.size()) != kPrefix || link.back() != ']')
		return 0;
	uint64_t inode = 0;
	auto [p, ec] = std::from_chars(link.data() + kPrefix.size(), link.data() + link.size() - 1, inode);
	return ec == std::errc() && p == link.data() + link.size() - 1 ? inode : 0;
}

bool holds_one_of(pid_t pid, const std::vector<uint64_t> &inodes)
{
	const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
	DIR *d = opendir(dir.c_str());
	if (!d)
		return false;
	bool found = false;
	while (dirent *e = readdir(d)) {
		if (e->d_name[0] == '.')
			continue;
		char link[64];
		ssize_t n = readlink((dir + "/" + e->d_name).c_str(), link, sizeof(link));
		if (n <= 0 || static_cast<size_t>(n) >= sizeof(link))
			continue;
		uint64_t inode = socket_inode(std::string_view(link, static_cast<size_t>(n)));
		if (inode && std::find(inodes.begin(), inodes.end(), inode) != inodes.end()) {
			found = true;
			break;
		}
	}
	closedir(d);
	return found;
}

} // namespace

std::vector<TcpListener> parse_proc_net_tcp(std::string_view text, int family)
{
	std::vector<TcpListener> out;
	std::istringstream in{std::string(text)};
	std::string line;
	std::getline(in, line); // the column names
	while (std::getline(in, line)) {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when
		// retrnsmt uid timeout inode ...
		std::istringstream fields(line);
		std::string sl, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
		fields >> sl >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
		if (state != kListenState)
			continue;
		size_t colon = local.find(':');
		if (colon == std::string::npos)
			continue;
		TcpListener l;
		unsigned port = 0;
		auto [pp, pec] = std::from_chars(local.data() + colon + 1, local.data() + local.size(), port, 16);
		auto [ip, iec] = std::from_chars(inode.data(), inode.data() + inode.size(), l.inode);
		if (pec != std::errc() || iec != std::errc() || port > 65535 ||
		    !parse_proc_addr(std::string_view(local).substr(0, colon), family, l.addr))
			continue;
		l.port = static_cast<uint16_t>(port);
		out.push_back(l);
	}
	return out;
}

bool covers(const TcpListener &l, const Endpoint &e)
{
	if (l.port != e.port)
		return false;
	if (l.addr.is_unspecified())
		return l.addr.family == e.addr.family || l.addr.family == AF_INET6;
	return l.addr == e.addr || (e.addr.is_unspecified() && l.addr.family == e.addr.family);
}

std::vector<TcpListener> listeners_of(const Endpoint &endpoint)
{
	std::vector<TcpListener> out;
	for (int family : {AF_INET, AF_INET6}) {
		auto text = sys::try_read_file(family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6");
		if (!text)
			continue;
		for (const TcpListener &l : parse_proc_net_tcp(*text, family))
			if (covers(l, endpoint))
				out.push_back(l);
	}
	return out;
}

std::vector<Process> socket_holders(const std::vector<uint64_t> &inodes)
{
	std::vector<Process> out;
	if (inodes.empty())
		return out;
	DIR *proc = opendir("/proc");
	if (!proc)
		return out;
	while (dirent *e = readdir(proc)) {
		pid_t pid = 0;
		const char *end = e->d_name + std::strlen(e->d_name);
		auto [p, ec] = std::from_chars(e->d_name, end, pid);
		if (ec != std::errc() || p != end || !holds_one_of(pid, inodes))
			continue;
		std::string comm = sys::try_read_file("/proc/" + std::to_string(pid) + "/comm").value_or("?");
		while (!comm.empty() && comm.back() == '\n')
			comm.pop_back();
		out.push_back(Process{pid, comm});
	}
	closedir(proc);
	std::sort(out.begin(), out.end(), [](const Process &a, const Process &b) { return a.pid < b.pid; });
	return out;
}

std::string describe(const std::vector<Process> &processes)
{
	std::string s;
	for (const Process &p : processes)
		s += (s.empty() ? "" : ", ") + std::to_string(p.pid) + " (" + p.comm + ")";
	if (s.empty())
		return s;
	return (processes.size() == 1 ? "pid " : "pids ") + s;
}

} // namespace sonic::net
