// tc ingress attachment of a BPF program on an interface, made through
// netlink: the clsact qdisc (created when missing) and one cls_bpf filter in
// direct-action mode at sonic's handle and priority.
#pragma once

#include <cstdint>

namespace sonic::net {

inline constexpr uint32_t kSonicTcHandle = 0x5300;
inline constexpr uint32_t kSonicTcPriority = 0x5300;

struct TcAttach {
	bool changed = false;
	bool made_clsact = false; // the qdisc did not exist before
};

// Attaches PROG_FD at sonic's handle and priority on IFINDEX's ingress,
// replacing whatever program sonic had there.
TcAttach tc_attach_ingress(int ifindex, int prog_fd, const char *ifname);

// Id of the program at sonic's handle and priority on IFINDEX's ingress; 0
// when none (or no clsact qdisc).
uint32_t tc_ingress_prog(int ifindex);

// Removes sonic's filter; returns whether it was there.
bool tc_detach_ingress(int ifindex);

// Filters on the clsact qdisc of IFINDEX, ingress and egress.
unsigned tc_clsact_filters(int ifindex);

// Removes the clsact qdisc (and with it every filter on it).
bool tc_remove_clsact(int ifindex);

} // namespace sonic::net
