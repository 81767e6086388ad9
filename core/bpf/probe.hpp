// `sonic prog probe`: what this kernel lets sonic do, in sonic's terms. The
// kernel's facts (release, lockdown, LSMs, BTF, bpffs, cgroup v2, JIT), the
// program types and attach points sonic uses, each helper each program
// calls, and per family and per program whether the kernel loads it.
//
// Everything is found by trying: a program is loaded (not pinned), a link
// is made and dropped, tc and XDP are attached to the loopback of a network
// namespace that exists only for the probe. Nothing on the host changes.
#pragma once

#include "bpf/family.hpp"

#include <optional>
#include <span>
#include <string>
#include <vector>

namespace sonic::bpf {

// One thing the kernel allows or not. DETAIL says why not, or how.
struct ProbeResult {
	std::string name;
	std::optional<bool> available; // nullopt: could not be told
	std::string detail;
};

struct HelperProbe {
	std::string helper;       // "bpf_msg_redirect_hash"
	std::string program_type; // "sk_msg"
	std::optional<bool> available;
	std::vector<std::string> programs; // sonic's programs that call it
};

struct ProgramProbe {
	std::string name;
	std::string type;
	std::string alternative_for; // the feature, when it is one of several ways
	std::optional<Refusal> refusal;
};

struct FamilyProbe {
	std::string name;
	bool available = false;
	std::vector<FeatureChoice> features; // what a load here would choose
	std::string reason;                  // when unavailable
	std::vector<ProgramProbe> programs;
};

struct KernelFacts {
	std::string release;
	std::string lockdown;          // none, integrity, confidentiality or unknown
	std::vector<std::string> lsms; // active LSMs, in order
	bool btf = false;              // /sys/kernel/btf/vmlinux
	std::optional<std::string> bpffs;   // where bpffs is mounted for sonic's root
	std::optional<std::string> cgroup2; // the cgroup v2 mount
	std::optional<long long> jit;       // net.core.bpf_jit_enable
	std::optional<long long> unprivileged_bpf_disabled;
	std::vector<std::string> missing_caps;
	std::string notes; // what could not be read, and why
};

struct Probe {
	KernelFacts kernel;
	std::vector<ProbeResult> program_types;
	std::vector<ProbeResult> attach_points;
	std::vector<HelperProbe> helpers;
	std::vector<FamilyProbe> families;
};

// Probes this kernel for FAMILIES; BPFFS is sonic's root (for where bpffs is).
// Needs CAP_BPF (and CAP_NET_ADMIN, CAP_PERFMON) for the loads.
Probe probe_kernel(std::span<const Family> families, const Bpffs &bpffs);

// Whether bpf_sk_assign() takes a listener that set SO_REUSEPORT. Linux 6.5
// and later do; before, the kernel refuses such a socket (ESOCKTNOSUPPORT),
// and tc steering into it drops every SYN. Found with a real SYN assigned at
// tc ingress of the loopback of a network namespace of the probe's own,
// once per process (a thread enters the namespace; no fork). available is
// nullopt where it cannot be told (no CAP_SYS_ADMIN for the namespace, or
// tc or the program refused). SONIC_BPF_REFUSE=sk_assign_reuseport reports
// it refused, for tests of the fallback on any kernel.
const ProbeResult &sk_assign_reuseport();

// Whether the running kernel's release is MAJOR.MINOR or later; for where a
// probe cannot be made, never in place of one.
bool kernel_release_at_least(int major, int minor);

// "bpf_map_lookup_elem" for helper id 1; "helper N" for ids this build's
// headers do not name.
std::string helper_name(int id);

} // namespace sonic::bpf
