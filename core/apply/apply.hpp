// `sonic apply`: declarative state for what sonic manages in the kernel and
// the state directory, read from TOML (sonic-apply(8)), compared with what
// is there, and converged by the same core functions the verbs use.
//
//   load()      the file, every value checked, each item knowing FILE:LINE:COL
//   resolve()   interfaces and cgroups looked up (a missing one: exit 1)
//   observe()   what the kernel and the state directory hold
//   plan()      the difference, as actions (no system calls: unit-tested)
//   execute()   the actions in order, stopping at the first failure
#pragma once

#include "bpf/accel.hpp"
#include "bpf/bpffs.hpp"
#include "bpf/fw.hpp"
#include "bpf/pins.hpp"
#include "bpf/steer.hpp"
#include "out/error.hpp"
#include "tls/ca.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::apply {

// ---- the file ----------------------------------------------------------

struct AccelCgroupWant {
	std::string path; // as written
	uint64_t id = 0;  // resolve()
	std::string where;
};

// [accel]: the cgroups accel is enabled on (default: the cgroup v2 root),
// with one port filter and scope for all of them.
struct AccelWant {
	std::vector<AccelCgroupWant> cgroups;
	bpf::PortFilter ports;
	bpf::AccelScope scope = bpf::AccelScope::All;
	std::string where;
};

struct TproxyWant {
	bpf::SteerSpec spec;
	bpf::SteerRule rule; // resolve(): as the kernel would hold it
	std::string where;
};

struct CaWant {
	tls::KeyType key_type = tls::KeyType::EcdsaP256;
	std::string where;
};

struct FwAttachWant {
	std::string dev;
	std::optional<bpf::XdpMode> mode; // nullopt: native, else generic
	std::string where;
};

struct FwWant {
	bpf::FwRuleSpec spec;
	std::string where;
};

struct Desired {
	std::string source;
	std::optional<AccelWant> accel;
	std::vector<TproxyWant> tproxy;
	std::optional<CaWant> ca;
	std::vector<FwAttachWant> fw_attach;
	std::vector<FwWant> fw;
};

// Reads TEXT, named SOURCE in errors. Anything wrong (an unknown key, a bad
// CIDR, port, rate, address or key type, a duplicate) is a usage error
// (exit 1) "SOURCE:LINE:COL: why".
Desired parse(std::string_view text, const std::string &source);
// The same from FILE; an unreadable file is an environment error (exit 3).
Desired load(const std::string &path);

// Looks up every interface and cgroup the file names: a missing one is a
// usage error naming its line. Fills the kernel-side identities plan()
// compares with.
void resolve(Desired &desired);

// ---- the system --------------------------------------------------------

struct Current {
	std::vector<bpf::AccelCgroup> accel;
	std::vector<bpf::SteerRule> tproxy; // this namespace's dev rules and every cgroup rule
	std::optional<std::string> ca_key_type; // nullopt: no CA
	std::vector<bpf::FwAttachment> fw_attach; // this namespace's
	std::vector<bpf::FwRule> fw;
};

Current observe(const bpf::Bpffs &fs, const std::string &state_dir);

// ---- the difference ----------------------------------------------------

enum class Op { CaInit, AccelEnable, AccelDisable, FwAttach, FwDetach, FwAdd, FwDel, TproxyAdd, TproxyDel };

struct Action {
	Op op = Op::CaInit;
	std::string text; // the verb that does the same: "fw add dev eth0 drop src 10.0.0.0/8"
	std::string why;  // "missing", "ports differ", "not in the file" ...
	// The operands of OP.
	std::optional<std::string> cgroup; // accel: nullopt for the root
	uint64_t cgroup_id = 0;
	bpf::PortFilter ports;
	bpf::AccelScope scope = bpf::AccelScope::All;
	bpf::SteerSpec steer;
	tls::KeyType key_type = tls::KeyType::EcdsaP256;
	std::string dev;
	std::optional<bpf::XdpMode> mode;
	bpf::FwRuleSpec fw;
};

struct Plan {
	std::vector<Action> actions;
	// What differs and is left alone, one line each (a CA of another key
	// type is never replaced).
	std::vector<std::string> notes;
};

// The actions that make CURRENT what DESIRED says, in an order that works:
// the CA, accel, fw attachments then rules, steering; removals (PRUNE: what
// sonic manages and the file does not name) before additions of the same
// kind. A section the file leaves out is not touched unless PRUNE.
Plan plan(const Desired &desired, const Current &current, bool prune);

std::string_view op_name(Op op);

// ---- doing it ----------------------------------------------------------

struct Outcome {
	std::vector<const Action *> done;    // applied (changed or found done)
	const Action *failed = nullptr;      // the action that failed
	std::string error;                   // its error
	ErrorKind kind = ErrorKind::Kernel;  // and its kind (the exit status)
	std::vector<const Action *> left;    // not attempted after the failure
};

// Runs PLAN's actions in order; stops at the first that throws.
Outcome execute(const bpf::Bpffs &fs, const std::string &state_dir, const Plan &plan);

} // namespace sonic::apply
