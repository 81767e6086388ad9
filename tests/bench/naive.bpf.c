// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The naive sockops + sk_msg pair the accel benchmark compares sonic with,
 * as the transparent-proxy lab wrote it: IPv4 only, keyed by addresses and
 * ports, no namespace, no policy. Never shipped; tests/bench/accel.py
 * compiles and loads it with bpftool.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct naive_key {
	__u32 local_ip;
	__u32 remote_ip;
	__u32 local_port;
	__u32 remote_port;
};

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct naive_key);
	__type(value, __u64);
} naive_socks SEC(".maps");

SEC("sockops")
int naive_sockops(struct bpf_sock_ops *ops)
{
	struct naive_key k = {};

	if (ops->family != 2)
		return 1;
	if (ops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && ops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	k.local_ip = ops->local_ip4;
	k.remote_ip = ops->remote_ip4;
	k.local_port = ops->local_port;
	k.remote_port = bpf_ntohl(ops->remote_port);
	bpf_sock_hash_update(ops, &naive_socks, &k, BPF_NOEXIST);
	return 1;
}

SEC("sk_msg")
int naive_msg(struct sk_msg_md *msg)
{
	struct naive_key k = {};

	k.local_ip = msg->remote_ip4;
	k.remote_ip = msg->local_ip4;
	k.local_port = bpf_ntohl(msg->remote_port);
	k.remote_port = msg->local_port;
	bpf_msg_redirect_hash(msg, &naive_socks, &k, BPF_F_INGRESS);
	return SK_PASS;
}
