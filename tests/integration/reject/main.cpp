// sonic with one extra BPF family that the kernel rejects, so tests can check
// how the real `prog load` path reports a verifier failure (exit 2, libbpf's
// reason, the verifier log under -d).
#include "cli.hpp"
#include "reject.skel.h"

namespace {
const void *reject_elf(size_t *size) { return reject_bpf__elf_bytes(size); }
const sonic::bpf::Family kReject[] = {{"reject", "a program the verifier rejects", reject_elf}};
} // namespace

int main(int argc, char **argv)
{
	sonic::cmd::Cli cli;
	cli.families = kReject;
	sonic::cmd::add_objects(cli);
	return cli.run(argc, argv);
}
