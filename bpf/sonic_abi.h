/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every struct and enum that crosses the kernel/userspace boundary through a
 * sonic map. Included by the BPF programs and by core/bpf, where each struct's
 * size and layout is static_assert'ed (core/bpf/abi_check.cpp), so the two
 * sides cannot drift apart silently.
 */
#ifndef SONIC_ABI_H
#define SONIC_ABI_H

#include <linux/types.h>

/* Bumped whenever a pinned map's key or value layout changes. */
#define SONIC_ABI_VERSION 3

/* Written last when a family is loaded: its presence marks a complete load. */
struct sonic_meta {
	__u32 abi_version;
	__u32 reserved;
	__u8 object_hash[32]; /* SHA-256 of the embedded BPF object */
};

/* ---- accel: local socket acceleration (sockops + sk_msg) ---------------- */

#define SONIC_ACCEL_MAX_SOCKS 65536
#define SONIC_ACCEL_MAX_FILTERED_CGROUPS 256
#define SONIC_ACCEL_MAX_LOCAL_ADDRS 1024
#define SONIC_ACCEL_MAX_PROXY_LISTENERS 1024
#define SONIC_ACCEL_MAX_PROXY_PEERS 16384

/*
 * Flow control. A redirect charges the receiver only against the global TCP
 * memory limit, so a reader slower than its writer would let the queue of
 * redirected data grow until TCP memory runs out and every sender gets
 * ENOMEM. Above this many queued bytes a direction takes the stack (where
 * TCP's window slows the writer) and comes back once the stack data has been
 * read and the queue is below half of it.
 */
#define SONIC_ACCEL_QUEUE_LIMIT (4u << 20)
/* The peer's queue is read after this many redirected bytes, not on every
 * message, so small messages pay nothing for flow control. */
#define SONIC_ACCEL_QUEUE_CHECK (256u << 10)

/*
 * SOCKHASH key of an accelerated socket, seen from that socket. Addresses are
 * always in IPv6 form, IPv4 as ::ffff:a.b.c.d, so an AF_INET client and the
 * AF_INET6 socket a dual-stack listener accepted for it produce mirror keys.
 * The network namespace cookie keeps identical tuples in different namespaces
 * apart.
 */
struct sonic_accel_key {
	__u64 netns;
	__u32 local_ip[4];  /* network byte order */
	__u32 remote_ip[4]; /* network byte order */
	__u16 local_port;   /* host byte order */
	__u16 remote_port;  /* host byte order */
	__u32 reserved;     /* always zero */
};

/* Per-socket state (BPF_MAP_TYPE_SK_STORAGE). */
struct sonic_accel_sock {
	__u64 cgroup_id; /* the enabled cgroup whose program decided */
	__u64 peer;      /* kernel address of the peer socket, learned from the
			  * first redirect; read only to size its queue */
	__u32 flags;     /* enum sonic_accel_sock_flags */
	__u32 unchecked; /* bytes redirected since the peer's queue was read */
};

enum sonic_accel_sock_flags {
	SONIC_ACCEL_SOCK_ACCELERATED = 1 << 0, /* inserted in the SOCKHASH */
	SONIC_ACCEL_SOCK_SKIPPED = 1 << 1,     /* decided against (policy) */
	SONIC_ACCEL_SOCK_DRAINING = 1 << 2,    /* no more redirects from it; set on
						* disable, or by its first miss */
	SONIC_ACCEL_SOCK_OVERFLOW = 1 << 3,    /* peer's queue full: stack for now */
};

/* Per-attachment state (BPF_MAP_TYPE_CGROUP_STORAGE), written by sonic
 * right after the sockops link is made. cgroup_id 0 = not configured yet. */
struct sonic_accel_cgroup {
	__u64 cgroup_id;
	__u32 flags; /* enum sonic_accel_cgroup_flags */
	__u32 reserved;
};

enum sonic_accel_cgroup_flags {
	SONIC_ACCEL_CG_PORT_FILTER = 1 << 0, /* only ports set in accel_ports */
	SONIC_ACCEL_CG_PROXY_LEGS = 1 << 1,  /* only connections with a sonic
					      * proxy at one end (scope proxy) */
};

/* Port filter of one cgroup (keyed by cgroup id): a connection is accelerated
 * when the bit of its server port is set. One bit per port, so any list of
 * ports and ranges fits. */
struct sonic_accel_ports {
	__u64 bits[65536 / 64];
};

/*
 * A listening endpoint of a running sonic proxy (`sonic run`), which records
 * its listeners here while the accel family is loaded: under scope proxy, a
 * connection to one of them is a proxy leg. addr all zero: a wildcard
 * listener (0.0.0.0 or ::). The proxy's upstream sockets need no entry: they
 * carry SONIC_STEER_BYPASS_MARK.
 */
struct sonic_accel_endpoint {
	__u64 netns;
	__u32 addr[4]; /* IPv6 form, network byte order */
	__u16 port;    /* host byte order */
	__u16 reserved;
	__u32 reserved2;
};

/* Who recorded an endpoint, so entries of a proxy that died can be told:
 * its pid, in the pid namespace whose inode number is pidns. */
struct sonic_accel_proxy {
	__u32 pid;
	__u32 pidns;
};

/* A non-loopback address owned by a network namespace (IPv6 form). */
struct sonic_accel_local_key {
	__u64 netns;
	__u32 addr[4];
};

enum sonic_accel_counter {
	SONIC_ACCEL_INSERTED,        /* sockets put in the SOCKHASH */
	SONIC_ACCEL_INSERT_FAILED,   /* SOCKHASH full or socket refused */
	SONIC_ACCEL_SKIPPED_REMOTE,  /* peer not a local address */
	SONIC_ACCEL_SKIPPED_PORT,    /* port filter did not match */
	SONIC_ACCEL_REDIRECTS,       /* messages moved socket to socket */
	SONIC_ACCEL_REDIRECT_BYTES,
	SONIC_ACCEL_MISSES,          /* peer not in the map: normal stack, and
				      * that socket stops redirecting */
	SONIC_ACCEL_MISS_BYTES,
	SONIC_ACCEL_PASSED_DRAINING, /* messages of draining sockets */
	SONIC_ACCEL_RELEASED,        /* sockets handed back to the normal stack */
	SONIC_ACCEL_OVERFLOWS,       /* a peer's queue passed the limit */
	SONIC_ACCEL_PASSED_OVERFLOW, /* messages sent by the stack meanwhile */
	SONIC_ACCEL_PASSED_OVERFLOW_BYTES,
	SONIC_ACCEL_RESUMED,         /* back to redirecting after an overflow */
	SONIC_ACCEL_SKIPPED_NOT_PROXY, /* scope proxy: no sonic proxy at either end */
	SONIC_ACCEL_NR_COUNTERS,
};

/* One per-CPU slot holds every counter, so a program run does one lookup. */
struct sonic_accel_stats {
	__u64 counter[SONIC_ACCEL_NR_COUNTERS];
};

/* Parameters and results of one run of the accel_release iterator. */
struct sonic_accel_iter {
	__u32 op;        /* enum sonic_accel_iter_op */
	__u32 reserved;
	__u64 cgroup_id; /* 0: every socket */
	__u64 visited;
	__u64 marked;
	__u64 released;
	__u64 pending;       /* draining sockets whose reader has not caught up */
	__u64 pending_bytes; /* bytes queued on them, where the kernel says */
};

enum sonic_accel_iter_op {
	SONIC_ACCEL_ITER_MARK = 1,       /* mark sockets of cgroup_id draining */
	SONIC_ACCEL_ITER_MARK_PEERS = 2, /* mark the peers of marked sockets */
	SONIC_ACCEL_ITER_RELEASE = 3,    /* remove drained sockets from the map */
	SONIC_ACCEL_ITER_COUNT = 4,      /* only count (visited, pending) */
};

/* accel_release_one's input: an Ethernet header's worth of padding, then the
 * SOCKHASH key of the socket to visit. */
#define SONIC_ACCEL_RELEASE_KEY_OFFSET 14

/* ---- splice: kernel TCP tunnels (sk_skb verdict over a SOCKHASH) --------- */

#define SONIC_SPLICE_MAX_SOCKS 65536

/*
 * Flow control. A redirect consumes the data from the receiving socket (its
 * window reopens at once) and queues it on the peer's psock until the peer's
 * worker can send it, with no limit. When more than BACKLOG_LIMIT bytes wait
 * there while the peer's send buffer is full (its reader is slow), or more
 * than BACKLOG_HARD_LIMIT in any case (the worker is starved of CPU), the
 * direction goes to userspace copying: its data is passed to the receiving
 * socket's own queue, which is charged to its receive buffer, so TCP's
 * window slows the sender again. It goes back to redirecting once the peer
 * has sent every byte redirected and every byte userspace copied.
 */
#define SONIC_SPLICE_BACKLOG_LIMIT (4u << 20)
#define SONIC_SPLICE_BACKLOG_HARD_LIMIT (32u << 20)

/*
 * State of one spliced socket, in splice_socks_state keyed by the socket's
 * cookie (SO_COOKIE); the socket itself is in splice_socks under the same
 * key. Written by sonic when it pairs the sockets; the program updates the
 * byte counts and flags.
 */
struct sonic_splice_sock {
	__u64 peer;       /* cookie of the socket this one's data goes out of */
	__u64 redirected; /* bytes handed to the peer's psock (never decreases) */
	__u64 passed;     /* bytes left on this socket for userspace to copy */
	__u64 peer_addr;  /* kernel address of the peer, learned by the first
			   * redirect; read only to size its backlog */
	__u32 peer_base;  /* the peer's write_seq when this direction started */
	__u32 flags;      /* enum sonic_splice_sock_flags */
};

enum sonic_splice_sock_flags {
	SONIC_SPLICE_CLIENT = 1 << 0,  /* the client end (stats: direction) */
	SONIC_SPLICE_STARTED = 1 << 1, /* peer_base is set */
	SONIC_SPLICE_COPY = 1 << 2,    /* data stays here for userspace */
	SONIC_SPLICE_OVERFLOW = 1 << 3, /* ... because the peer's backlog was full */
};

enum sonic_splice_counter {
	SONIC_SPLICE_STREAMS,          /* directions that carried their first byte */
	SONIC_SPLICE_REDIRECTS,        /* buffers moved to the peer's psock */
	SONIC_SPLICE_REDIRECT_BYTES,
	SONIC_SPLICE_CLIENT_BYTES,     /* of those: client -> upstream */
	SONIC_SPLICE_UPSTREAM_BYTES,   /* of those: upstream -> client */
	SONIC_SPLICE_OVERFLOWS,        /* directions switched to copying */
	SONIC_SPLICE_RESUMED,          /* ... and back to redirecting */
	SONIC_SPLICE_PASSED,           /* buffers left for userspace copying */
	SONIC_SPLICE_PASSED_BYTES,
	SONIC_SPLICE_NO_STATE,         /* buffers of a socket sonic did not pair
					* (or is unpairing): left for userspace */
	SONIC_SPLICE_NO_PEER,          /* peer not in the map: direction copied */
	SONIC_SPLICE_EMPTY,            /* zero-length buffers (a bare FIN) dropped */
	SONIC_SPLICE_NR_COUNTERS,
};

struct sonic_splice_stats {
	__u64 counter[SONIC_SPLICE_NR_COUNTERS];
};

/* ---- steer: transparent steering (tc + sk_assign, cgroup connect) ------- */

#define SONIC_STEER_MAX_RULES 64   /* one bit each in a port entry's mask */
#define SONIC_STEER_MAX_RANGES 16  /* port ranges of one rule */
#define SONIC_STEER_MAX_PORT_ENTRIES 262144
#define SONIC_STEER_MAX_ORIG 65536
#define SONIC_STEER_MAX_CGROUP_DEPTH 16

/*
 * The socket mark of the proxy's own upstream connections. A socket carrying
 * it is never redirected by the connect programs, and it differs from every
 * steering mark, so the fwmark rule never sends its packets to the local
 * table either.
 */
#define SONIC_STEER_BYPASS_MARK 0x5301u

enum sonic_steer_kind {
	SONIC_STEER_DEV = 1,    /* packets arriving on an interface (tc) */
	SONIC_STEER_CGROUP = 2, /* connections of processes in a cgroup */
};

/*
 * Where the rules of one port live: the mask has the bit of every rule slot
 * whose selector covers the port, so traffic that matches no rule costs one
 * hash lookup. scope is the ifindex (dev) or the cgroup id; netns is 0 for
 * both (tc programs cannot tell namespaces apart before a socket is found).
 */
struct sonic_steer_port_key {
	__u64 netns;
	__u64 scope;
	__u8 kind;   /* enum sonic_steer_kind */
	__u8 family; /* AF_INET or AF_INET6 */
	__u16 port;  /* host byte order */
	__u32 reserved;
};

struct sonic_steer_range {
	__u16 first;
	__u16 last;
};

/* One rule; the slot is its index in steer_rules. Addresses in IPv6 form
 * (IPv4 as ::ffff:a.b.c.d), network byte order. */
struct sonic_steer_rule {
	__u32 flags;       /* SONIC_STEER_RULE_* */
	__u8 kind;         /* enum sonic_steer_kind */
	__u8 family;       /* AF_INET or AF_INET6 */
	__u8 dst_prefix;   /* bits of dst that must match, in IPv6 form */
	__u8 nr_ranges;
	__u64 netns;       /* dev: namespace cookie; cgroup: 0 */
	__u64 scope;       /* ifindex or cgroup id */
	__u32 dst[4];
	__u32 to[4];
	__u16 to_port;     /* host byte order */
	__u16 reserved;
	__u32 mark;        /* dev: fwmark put on steered packets */
	__u32 table;       /* dev: routing table with the local route */
	__u32 reserved2;
	struct sonic_steer_range ranges[SONIC_STEER_MAX_RANGES];
};

enum sonic_steer_rule_flags {
	SONIC_STEER_RULE_IN_USE = 1 << 0,
};

/* Original destination of a connection a connect program redirected, keyed
 * by the connection as the proxy's accepted socket sees it. */
struct sonic_steer_orig_key {
	__u64 netns;
	__u32 client[4]; /* the connecting socket's address */
	__u32 proxy[4];  /* the address it was redirected to */
	__u16 client_port; /* host byte order */
	__u16 proxy_port;  /* host byte order */
	__u32 reserved;
};

struct sonic_steer_orig {
	__u32 addr[4];
	__u16 port;   /* host byte order */
	__u8 family;
	__u8 reserved;
	__u32 rule;   /* slot of the rule that redirected it */
};

/* An interface sonic attached steer_tc to, in one network namespace. */
struct sonic_steer_dev_key {
	__u64 netns;
	__u32 ifindex;
	__u32 reserved;
};

enum sonic_steer_dev_flags {
	SONIC_STEER_DEV_MADE_CLSACT = 1 << 0, /* sonic created the clsact qdisc */
};

enum sonic_steer_counter {
	SONIC_STEER_ASSIGNED_ESTABLISHED, /* packets given to a proxy socket */
	SONIC_STEER_ASSIGNED_LISTENER,    /* packets given to the listener */
	SONIC_STEER_REDIRECTED,           /* connects sent to the proxy */
	SONIC_STEER_REDIRECTED_NO_LISTENER, /* of those, with nothing listening
					     * (the connect is refused) */
	SONIC_STEER_BYPASSED,             /* connects of the proxy's own sockets */
	SONIC_STEER_ORIG_RECORDED,        /* original destinations stored */
	SONIC_STEER_ORIG_ANSWERED,        /* SO_ORIGINAL_DST answered from them */
	SONIC_STEER_MISS_NO_RULE,         /* port entry found, no rule matched
					   * (dst CIDR) */
	SONIC_STEER_DROP_NO_LISTENER,     /* nothing listens at the target */
	SONIC_STEER_DROP_ASSIGN_FAILED,   /* the kernel refused the socket */
	SONIC_STEER_PASSED_MALFORMED,     /* truncated headers: passed */
	SONIC_STEER_NR_COUNTERS,
};

struct sonic_steer_stats {
	__u64 counter[SONIC_STEER_NR_COUNTERS];
};

#endif /* SONIC_ABI_H */
