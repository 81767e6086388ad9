// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* A family the verifier must reject: it reads past the end of the sockops
 * context. Used only by tests/integration/test_prog.py. */
#include "sonic_bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SONIC_META_MAP(reject);

SEC("sockops")
int reject_sockops(struct bpf_sock_ops *ops)
{
	__u32 v;

	asm volatile("%0 = *(u32 *)(%1 + 4096)" : "=r"(v) : "r"(ops));
	return v;
}
