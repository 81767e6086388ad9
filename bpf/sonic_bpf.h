/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Helpers shared by sonic's BPF programs (kernel side only). */
#ifndef SONIC_BPF_H
#define SONIC_BPF_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "sonic_abi.h"

#define AF_INET 2
#define AF_INET6 10

/*
 * Loads a 32-bit context field as one `ctx + constant` access. Plain C field
 * reads let clang merge loads from two branches into arithmetic on the ctx
 * pointer, which the verifier rejects ("dereference of modified ctx ptr").
 */
#define CTX_U32(ctx, field)                                                    \
	({                                                                     \
		__u32 __v;                                                     \
		asm volatile("%0 = *(u32 *)(%1 + %2)"                          \
			     : "=r"(__v)                                       \
			     : "r"(ctx),                                       \
			       "i"(__builtin_offsetof(typeof(*(ctx)), field))); \
		__v;                                                           \
	})

#define CTX_U64(ctx, field)                                                    \
	({                                                                     \
		__u64 __v;                                                     \
		asm volatile("%0 = *(u64 *)(%1 + %2)"                          \
			     : "=r"(__v)                                       \
			     : "r"(ctx),                                       \
			       "i"(__builtin_offsetof(typeof(*(ctx)), field))); \
		__v;                                                           \
	})

/* The index of the lowest set bit of X (X != 0), without a loop. */
static __always_inline __u32 lowest_bit(__u64 x)
{
	__u32 n = 0;

	if (!(x & 0xffffffffULL)) {
		n += 32;
		x >>= 32;
	}
	if (!(x & 0xffff)) {
		n += 16;
		x >>= 16;
	}
	if (!(x & 0xff)) {
		n += 8;
		x >>= 8;
	}
	if (!(x & 0xf)) {
		n += 4;
		x >>= 4;
	}
	if (!(x & 0x3)) {
		n += 2;
		x >>= 2;
	}
	if (!(x & 0x1))
		n += 1;
	return n;
}

/* Marks a complete load of a family; sonic writes and pins it last. */
#define SONIC_META_MAP(family)                                                 \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_ARRAY);                              \
		__uint(max_entries, 1);                                        \
		__type(key, __u32);                                            \
		__type(value, struct sonic_meta);                              \
	} family##_meta SEC(".maps")

/*
 * The few kernel-internal types the iterators read, as CO-RE shadows: libbpf
 * relocates every field access against the running kernel's BTF, so nothing
 * here depends on the build host's kernel.
 */
struct list_head___sonic {
	struct list_head___sonic *next;
	struct list_head___sonic *prev;
} __attribute__((preserve_access_index));

struct sock {
	void *sk_user_data;
	int sk_sndbuf;
	int sk_wmem_queued;
} __attribute__((preserve_access_index));

/* msg_tot_len is Linux 6.10+: read it only behind bpf_core_field_exists(). */
struct sk_psock___sonic {
	struct list_head___sonic ingress_msg;
	__u32 msg_tot_len;
} __attribute__((preserve_access_index));

struct sk_msg_sg___sonic {
	__u32 size;
} __attribute__((preserve_access_index));

struct sk_msg___sonic {
	struct sk_msg_sg___sonic sg;
	struct sock *sk_redir;
	struct sock *sk;
	struct list_head___sonic list;
} __attribute__((preserve_access_index));

struct tcp_sock___sonic {
	__u32 copied_seq;
	__u32 write_seq;
} __attribute__((preserve_access_index));

struct bpf_iter_meta {
	void *seq;
	__u64 session_id;
	__u64 seq_num;
} __attribute__((preserve_access_index));

struct bpf_iter__sockmap {
	struct bpf_iter_meta *meta;
	struct bpf_map *map;
	void *key;
	struct sock *sk;
} __attribute__((preserve_access_index));

/* sk_user_data carries flag bits in its low bits (SK_USER_DATA_*). */
#define SONIC_SK_USER_DATA_PTRMASK (~7UL)

#endif /* SONIC_BPF_H */
