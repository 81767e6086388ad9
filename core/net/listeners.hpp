// TCP sockets listening in this network namespace (/proc/net/tcp and tcp6)
// and the processes that hold them (/proc/PID/fd), for messages such as
// "address in use by pid 1234 (nginx)" and for `tproxy list`'s listener
// column.
#pragma once

#include "net/addr.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace sonic::net {

struct TcpListener {
	IpAddr addr; // an IPv4-mapped address in tcp6 counts as IPv4
	uint16_t port = 0;
	uint64_t inode = 0;
};

// The listening sockets in the text of /proc/net/tcp (FAMILY AF_INET) or
// /proc/net/tcp6 (AF_INET6). Lines that do not parse are skipped.
std::vector<TcpListener> parse_proc_net_tcp(std::string_view text, int family);

// Whether LISTENER takes connections to ENDPOINT: the same port, and the
// same address or a wildcard over it (an IPv6 wildcard may take IPv4 too).
bool covers(const TcpListener &listener, const Endpoint &endpoint);

// The sockets listening in this namespace that cover ENDPOINT.
std::vector<TcpListener> listeners_of(const Endpoint &endpoint);

struct Process {
	pid_t pid = 0;
	std::string comm; // its name, from /proc/PID/comm
};

// The processes with a descriptor for one of the socket INODES, as far as
// /proc shows them (other users' descriptors need root), lowest pid first.
std::vector<Process> socket_holders(const std::vector<uint64_t> &inodes);

// "pid 1234 (nginx)", "pids 1234 (nginx), 1240 (nginx)", or "" for none.
std::string describe(const std::vector<Process> &processes);

} // namespace sonic::net
