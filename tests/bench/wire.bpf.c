// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The "wire" of tests/bench/fw.sh: a middle namespace whose two veth ends
 * pass every frame to each other with XDP_REDIRECT. A frame redirected into
 * a veth reaches its peer as an XDP frame, with no socket buffer, the way a
 * NIC hands frames to its driver: the receiver's XDP program sees it before
 * the kernel allocates anything, and the stack (nftables, iptables) only
 * after the driver built the skb.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* ingress ifindex -> the ifindex its frames leave by */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} wire_peer SEC(".maps");

SEC("xdp")
int wire(struct xdp_md *ctx)
{
	return bpf_redirect_map(&wire_peer, ctx->ingress_ifindex, XDP_DROP);
}
