// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * steer: transparent steering of TCP connections to the proxy.
 *
 * Two ways in, one rule table (steer_rules, indexed by slot) and one port
 * index (steer_ports: scope + family + port -> mask of rule slots), so a
 * packet or connect that matches no rule costs one hash lookup, and adding a
 * rule is a map update, never a program load.
 *
 * dev: steer_tc runs at tc ingress of an interface. A matching packet is
 * given to a socket with bpf_sk_assign: the proxy's socket of that very
 * connection when one exists (the accepted socket, whose local address is the
 * original destination), else the proxy's listener at the rule's target.
 * The packet gets the rule's mark, and a policy rule (fwmark -> a table whose
 * default route is local) makes the stack deliver it locally instead of
 * forwarding it, where TCP takes the assigned socket. With nothing listening
 * at the target the packet is dropped and counted: the client's SYN goes
 * unanswered and its retransmission reaches the proxy once it is back.
 *
 * cgroup: steer_connect4/6 rewrite the destination of a matching connect()
 * by a process in a steered cgroup to the rule's target and keep the
 * original destination in the socket's storage. steer_sockops copies it,
 * when the kernel has chosen the source port, into steer_orig keyed by the
 * connection as the proxy sees it, and steer_getsockopt answers the proxy's
 * getsockopt(SO_ORIGINAL_DST) from there, like conntrack after a REDIRECT.
 *
 * Sockets marked SONIC_STEER_BYPASS_MARK (the proxy's upstream connections)
 * are never redirected.
 */
#include "sonic_bpf.h"

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SOCK_STREAM 1
#define SOL_IP 0
#define SOL_IPV6 41
#define SO_ORIGINAL_DST 80 /* IP6T_SO_ORIGINAL_DST has the same number */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SONIC_STEER_MAX_RULES);
	__type(key, __u32);
	__type(value, struct sonic_steer_rule);
} steer_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SONIC_STEER_MAX_PORT_ENTRIES);
	__type(key, struct sonic_steer_port_key);
	__type(value, __u64);
} steer_ports SEC(".maps");

/* Original destination of a redirected connect, until the source port is
 * known. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sonic_steer_orig);
} steer_sk SEC(".maps");

/* Least recently used entries go first: a proxy reads an entry right after
 * accept, long before 65536 newer connections push it out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SONIC_STEER_MAX_ORIG);
	__type(key, struct sonic_steer_orig_key);
	__type(value, struct sonic_steer_orig);
} steer_orig SEC(".maps");

/* Interfaces steer_tc is attached to, so flush removes a clsact qdisc only
 * when sonic made it. Written by sonic only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct sonic_steer_dev_key);
	__type(value, __u32);
} steer_devs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sonic_steer_stats);
} steer_stats SEC(".maps");

SONIC_META_MAP(steer);

static __always_inline void count(__u32 idx)
{
	struct sonic_steer_stats *s;
	__u32 zero = 0;

	s = bpf_map_lookup_elem(&steer_stats, &zero);
	if (s && idx < SONIC_STEER_NR_COUNTERS)
		__sync_fetch_and_add(&s->counter[idx], 1);
}

static __always_inline int prefix_match(const __u32 a[4], const __u32 b[4],
					__u32 bits)
{
	for (int i = 0; i < 4; i++) {
		__u32 n = bits > 32 ? 32 : bits;
		__u32 mask = n == 0 ? 0 : bpf_htonl(~0u << (32 - n));

		if ((a[i] ^ b[i]) & mask)
			return 0;
		bits -= n;
	}
	return 1;
}

struct match_ctx {
	__u64 mask;
	const __u32 *dst;
	__u8 family;
	int best;
	int best_len;
};

/* One rule of the port entry per call, lowest slot first: a port that one
 * rule uses costs one call, not one per possible slot. */
static long match_slot(__u32 i, void *data)
{
	struct match_ctx *c = data;
	struct sonic_steer_rule *rule;
	__u32 slot;

	if (!c->mask)
		return 1;
	slot = lowest_bit(c->mask);
	c->mask &= c->mask - 1;
	rule = bpf_map_lookup_elem(&steer_rules, &slot);
	if (rule && (rule->flags & SONIC_STEER_RULE_IN_USE) &&
	    rule->family == c->family &&
	    (int)rule->dst_prefix > c->best_len &&
	    prefix_match(rule->dst, c->dst, rule->dst_prefix)) {
		c->best = slot;
		c->best_len = rule->dst_prefix;
	}
	return c->mask ? 0 : 1;
}

/*
 * The rule for a destination: among the slots in the port entry, the one
 * with the longest matching dst prefix. Returns its slot, or -1.
 */
static __always_inline int match(__u8 kind, __u64 netns, __u64 scope,
				 __u8 family, __u16 port, const __u32 dst[4])
{
	struct sonic_steer_port_key key = {
		.netns = netns,
		.scope = scope,
		.kind = kind,
		.family = family,
		.port = port,
	};
	struct match_ctx c = { .dst = dst, .family = family, .best = -1,
			       .best_len = -1 };
	__u64 *mask;

	mask = bpf_map_lookup_elem(&steer_ports, &key);
	if (!mask)
		return -1;
	c.mask = *mask;
	bpf_loop(SONIC_STEER_MAX_RULES, match_slot, &c, 0);
	if (c.best < 0)
		count(SONIC_STEER_MISS_NO_RULE);
	return c.best;
}

/* ---- dev: tc ingress ----------------------------------------------------- */

struct flow {
	struct bpf_sock_tuple tuple; /* as the packet carries it */
	__u32 dst[4];                /* IPv6 form */
	__u16 dport;                 /* host byte order */
	__u8 family;
	__u8 v6;
};

/* 1 for a TCP packet (FLOW filled), 0 for anything else, -1 when the
 * headers are cut short. */
static __always_inline int parse(struct __sk_buff *skb, struct flow *f)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct tcphdr *tcp;

	if ((void *)(eth + 1) > end)
		return -1;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end)
			return -1;
		if (ip->protocol != IPPROTO_TCP)
			return 0;
		if (ip->frag_off & bpf_htons(0x1fff))
			return 0; /* a later fragment has no TCP header */
		tcp = (void *)ip + ip->ihl * 4;
		if ((void *)(tcp + 1) > end)
			return -1;
		f->tuple.ipv4.saddr = ip->saddr;
		f->tuple.ipv4.daddr = ip->daddr;
		f->tuple.ipv4.sport = tcp->source;
		f->tuple.ipv4.dport = tcp->dest;
		f->dst[2] = bpf_htonl(0xffff);
		f->dst[3] = ip->daddr;
		f->dport = bpf_ntohs(tcp->dest);
		f->family = AF_INET;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return -1;
		/* Extension headers are not walked: such packets pass. */
		if (ip6->nexthdr != IPPROTO_TCP)
			return 0;
		tcp = (void *)(ip6 + 1);
		if ((void *)(tcp + 1) > end)
			return -1;
		__builtin_memcpy(f->tuple.ipv6.saddr, &ip6->saddr, 16);
		__builtin_memcpy(f->tuple.ipv6.daddr, &ip6->daddr, 16);
		f->tuple.ipv6.sport = tcp->source;
		f->tuple.ipv6.dport = tcp->dest;
		__builtin_memcpy(f->dst, &ip6->daddr, 16);
		f->dport = bpf_ntohs(tcp->dest);
		f->family = AF_INET6;
		f->v6 = 1;
	} else {
		return 0;
	}
	return 1;
}

SEC("tc")
int steer_tc(struct __sk_buff *skb)
{
	struct sonic_steer_rule *rule;
	struct bpf_sock_tuple target;
	struct bpf_sock *sk;
	struct flow f = {};
	__u32 size, slot;
	int rc, best;

	rc = parse(skb, &f);
	if (rc <= 0) {
		if (rc < 0)
			count(SONIC_STEER_PASSED_MALFORMED);
		return TC_ACT_OK;
	}
	/* At tc ingress there is no socket yet, and the netns cookie helper
	 * answers for the initial namespace: port entries of dev rules carry
	 * netns 0 (one bpffs root per network namespace keeps them apart). */
	best = match(SONIC_STEER_DEV, 0, skb->ifindex, f.family, f.dport, f.dst);
	if (best < 0)
		return TC_ACT_OK;
	slot = best;
	rule = bpf_map_lookup_elem(&steer_rules, &slot);
	if (!rule)
		return TC_ACT_OK;
	size = f.v6 ? sizeof(f.tuple.ipv6) : sizeof(f.tuple.ipv4);

	/* The proxy's own socket of this connection first. */
	sk = bpf_skc_lookup_tcp(skb, &f.tuple, size, BPF_F_CURRENT_NETNS, 0);
	if (sk) {
		if (sk->state != BPF_TCP_LISTEN &&
		    bpf_sk_assign(skb, sk, 0) == 0) {
			bpf_sk_release(sk);
			skb->mark = rule->mark;
			count(SONIC_STEER_ASSIGNED_ESTABLISHED);
			return TC_ACT_OK;
		}
		bpf_sk_release(sk);
	}

	/* Then the listener at the target. */
	target = f.tuple;
	if (f.v6) {
		__builtin_memcpy(target.ipv6.daddr, rule->to, 16);
		target.ipv6.dport = bpf_htons(rule->to_port);
	} else {
		target.ipv4.daddr = rule->to[3];
		target.ipv4.dport = bpf_htons(rule->to_port);
	}
	sk = bpf_skc_lookup_tcp(skb, &target, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk) {
		count(SONIC_STEER_DROP_NO_LISTENER);
		return TC_ACT_SHOT;
	}
	if (sk->state != BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		count(SONIC_STEER_DROP_NO_LISTENER);
		return TC_ACT_SHOT;
	}
	rc = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	if (rc) {
		count(SONIC_STEER_DROP_ASSIGN_FAILED);
		return TC_ACT_SHOT;
	}
	skb->mark = rule->mark;
	count(SONIC_STEER_ASSIGNED_LISTENER);
	return TC_ACT_OK;
}

/* ---- cgroup: connect, sockops, getsockopt --------------------------------- */

/* The rule of the innermost steered cgroup of the current process. */
static __always_inline int match_cgroup(__u8 family, __u16 port,
					const __u32 dst[4])
{
	int best = -1;

	for (int level = 0; level < SONIC_STEER_MAX_CGROUP_DEPTH; level++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(level);
		int slot;

		if (!id)
			break;
		slot = match(SONIC_STEER_CGROUP, 0, id, family, port, dst);
		if (slot >= 0)
			best = slot;
	}
	return best;
}

/*
 * Redirects CTX to the rule's target; FAMILY is the family of the original
 * destination (AF_INET for an IPv4-mapped one on an IPv6 socket), V6 a
 * constant saying which program runs: each may touch only its own fields.
 */
static __always_inline int redirect(struct bpf_sock_addr *ctx, const int v6,
				    __u8 family, const __u32 dst[4])
{
	struct bpf_sock_tuple target = {};
	struct sonic_steer_rule *rule;
	struct sonic_steer_orig *orig;
	struct bpf_sock *sk = ctx->sk, *listener;
	__u16 port = bpf_ntohs(ctx->user_port);
	__u32 slot;
	int best;

	if (!sk || ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP)
		return 1;
	best = match_cgroup(family, port, dst);
	if (best < 0)
		return 1;
	if (sk->mark == SONIC_STEER_BYPASS_MARK) {
		count(SONIC_STEER_BYPASSED);
		return 1;
	}
	slot = best;
	rule = bpf_map_lookup_elem(&steer_rules, &slot);
	if (!rule)
		return 1;
	orig = bpf_sk_storage_get(&steer_sk, sk, 0,
				  BPF_SK_STORAGE_GET_F_CREATE);
	if (!orig)
		return 1; /* out of memory: the connection goes where it was
			   * meant to */
	__builtin_memcpy(orig->addr, dst, 16);
	orig->port = port;
	orig->family = family;
	orig->rule = slot;

	if (!v6) {
		ctx->user_ip4 = rule->to[3];
		target.ipv4.daddr = rule->to[3];
		target.ipv4.dport = bpf_htons(rule->to_port);
		listener = bpf_sk_lookup_tcp(ctx, &target, sizeof(target.ipv4),
					     BPF_F_CURRENT_NETNS, 0);
	} else {
		ctx->user_ip6[0] = rule->to[0];
		ctx->user_ip6[1] = rule->to[1];
		ctx->user_ip6[2] = rule->to[2];
		ctx->user_ip6[3] = rule->to[3];
		__builtin_memcpy(target.ipv6.daddr, rule->to, 16);
		target.ipv6.dport = bpf_htons(rule->to_port);
		listener = bpf_sk_lookup_tcp(ctx, &target, sizeof(target.ipv6),
					     BPF_F_CURRENT_NETNS, 0);
	}
	ctx->user_port = bpf_htons(rule->to_port);
	if (listener)
		bpf_sk_release(listener);
	else
		count(SONIC_STEER_REDIRECTED_NO_LISTENER);
	count(SONIC_STEER_REDIRECTED);
	return 1;
}

SEC("cgroup/connect4")
int steer_connect4(struct bpf_sock_addr *ctx)
{
	__u32 dst[4] = { 0, 0, bpf_htonl(0xffff), ctx->user_ip4 };

	return redirect(ctx, 0, AF_INET, dst);
}

SEC("cgroup/connect6")
int steer_connect6(struct bpf_sock_addr *ctx)
{
	__u32 dst[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2],
			 ctx->user_ip6[3] };
	__u8 family = AF_INET6;

	if (dst[0] == 0 && dst[1] == 0 && dst[2] == bpf_htonl(0xffff))
		family = AF_INET; /* IPv4-mapped: IPv4 rules apply */
	return redirect(ctx, 1, family, dst);
}

/* Fills the client and proxy addresses of orig key K from socket context C,
 * whose fields for them are named CLIENT4, PROXY4, CLIENT6 and PROXY6
 * (bpf_sock_ops and bpf_sock name the same addresses differently). A macro
 * rather than a function: the verifier wants direct loads from each context.
 * IPv4 addresses are stored v4-mapped. */
#define ORIG_KEY_ADDRS(k, c, client4, proxy4, client6, proxy6)                 \
	do {                                                                   \
		if (CTX_U32(c, family) == AF_INET) {                           \
			(k)->client[2] = bpf_htonl(0xffff);                    \
			(k)->client[3] = CTX_U32(c, client4);                  \
			(k)->proxy[2] = bpf_htonl(0xffff);                     \
			(k)->proxy[3] = CTX_U32(c, proxy4);                    \
		} else {                                                       \
			(k)->client[0] = CTX_U32(c, client6[0]);               \
			(k)->client[1] = CTX_U32(c, client6[1]);               \
			(k)->client[2] = CTX_U32(c, client6[2]);               \
			(k)->client[3] = CTX_U32(c, client6[3]);               \
			(k)->proxy[0] = CTX_U32(c, proxy6[0]);                 \
			(k)->proxy[1] = CTX_U32(c, proxy6[1]);                 \
			(k)->proxy[2] = CTX_U32(c, proxy6[2]);                 \
			(k)->proxy[3] = CTX_U32(c, proxy6[3]);                 \
		}                                                              \
	} while (0)

SEC("sockops")
int steer_sockops(struct bpf_sock_ops *ops)
{
	struct sonic_steer_orig_key key = {};
	struct sonic_steer_orig *orig;
	struct bpf_sock *sk;

	if (CTX_U32(ops, op) != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	sk = ops->sk;
	if (!sk)
		return 1;
	orig = bpf_sk_storage_get(&steer_sk, sk, 0, 0);
	if (!orig)
		return 1;
	ORIG_KEY_ADDRS(&key, ops, local_ip4, remote_ip4, local_ip6, remote_ip6);
	key.client_port = CTX_U32(ops, local_port);
	key.proxy_port = bpf_ntohl(CTX_U32(ops, remote_port));
	key.netns = bpf_get_netns_cookie(ops);
	if (bpf_map_update_elem(&steer_orig, &key, orig, BPF_ANY) == 0)
		count(SONIC_STEER_ORIG_RECORDED);
	bpf_sk_storage_delete(&steer_sk, sk);
	return 1;
}

SEC("cgroup/getsockopt")
int steer_getsockopt(struct bpf_sockopt *ctx)
{
	struct sonic_steer_orig_key key = {};
	struct sonic_steer_orig *orig;
	struct bpf_sock *sk = ctx->sk;
	void *end = ctx->optval_end;
	void *val = ctx->optval;

	if (ctx->optname != SO_ORIGINAL_DST ||
	    (ctx->level != SOL_IP && ctx->level != SOL_IPV6))
		return 1;
	if (!sk || CTX_U32(sk, protocol) != IPPROTO_TCP)
		return 1;
	ORIG_KEY_ADDRS(&key, sk, dst_ip4, src_ip4, dst_ip6, src_ip6);
	key.client_port = bpf_ntohs(CTX_U32(sk, dst_port));
	key.proxy_port = CTX_U32(sk, src_port);
	key.netns = bpf_get_netns_cookie(ctx);
	orig = bpf_map_lookup_elem(&steer_orig, &key);
	if (!orig)
		return 1; /* not redirected by sonic: the kernel's answer */

	if (ctx->level == SOL_IP) {
		struct sockaddr_in___sonic {
			__u16 family;
			__u16 port;
			__u32 addr;
			__u8 zero[8];
		} *sin = val;

		if (orig->family != AF_INET || (void *)(sin + 1) > end)
			return 1;
		sin->family = AF_INET;
		sin->port = bpf_htons(orig->port);
		sin->addr = orig->addr[3];
		__builtin_memset(sin->zero, 0, sizeof(sin->zero));
		ctx->optlen = sizeof(*sin);
	} else {
		struct sockaddr_in6___sonic {
			__u16 family;
			__u16 port;
			__u32 flowinfo;
			__u32 addr[4];
			__u32 scope_id;
		} *sin6 = val;

		if ((void *)(sin6 + 1) > end)
			return 1;
		sin6->family = AF_INET6;
		sin6->port = bpf_htons(orig->port);
		sin6->flowinfo = 0;
		sin6->addr[0] = orig->addr[0];
		sin6->addr[1] = orig->addr[1];
		sin6->addr[2] = orig->addr[2];
		sin6->addr[3] = orig->addr[3];
		sin6->scope_id = 0;
		ctx->optlen = sizeof(*sin6);
	}
	ctx->retval = 0;
	count(SONIC_STEER_ORIG_ANSWERED);
	return 1;
}
