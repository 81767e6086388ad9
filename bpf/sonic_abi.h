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

/* ---- fw: XDP filter, rate limits, blocklist, flow table ------------------ */

#define SONIC_FW_MAX_RULES 64   /* one bit each in an index entry's mask */
#define SONIC_FW_MAX_RANGES 16  /* dport items of one rule */
#define SONIC_FW_MAX_PORT_ENTRIES 262144
#define SONIC_FW_MAX_PREFIXES 4096 /* distinct src or dst prefixes of rules */
/* Defaults of the maps whose size `prog load --map-size` sets. */
#define SONIC_FW_DEFAULT_BLOCKLIST 65536
#define SONIC_FW_DEFAULT_BUCKETS 65536
#define SONIC_FW_DEFAULT_FLOWS 65536
#define SONIC_FW_REASON_LEN 64
/* IPv6 extension headers walked to find the transport header. */
#define SONIC_FW_MAX_EXT_HEADERS 6

/*
 * Key of the LPM tries (rule sources, rule destinations, blocklist). The
 * address is in IPv6 form, IPv4 as ::ffff:a.b.c.d, so one trie holds both
 * families; an IPv4 prefix /N is stored as /(96 + N).
 */
struct sonic_fw_lpm_key {
	__u32 prefixlen;
	__u8 addr[16]; /* network byte order */
};

enum sonic_fw_action {
	SONIC_FW_DROP = 1,
	SONIC_FW_PASS = 2,
	SONIC_FW_LIMIT = 3, /* pass within the rate, drop above it */
};

enum sonic_fw_rule_flags {
	SONIC_FW_RULE_IN_USE = 1 << 0,
	SONIC_FW_RULE_SYN = 1 << 1, /* TCP packets with SYN set and ACK clear */
	SONIC_FW_RULE_SRC = 1 << 2, /* src given (for `fw list`: /0 is a prefix) */
	SONIC_FW_RULE_DST = 1 << 3,
};

struct sonic_fw_range {
	__u16 first;
	__u16 last;
};

/*
 * One rule; the slot is its index in fw_rules. A packet's candidate rules
 * come from the tries and the port index (bit N = slot N); among the
 * candidates that match interface, protocol and flags, the lowest id wins,
 * so rules apply in the order they were added, as in nftables. Addresses,
 * prefixes and ports are kept for `fw list`; the program reads the indexes.
 */
struct sonic_fw_rule {
	__u32 flags;        /* enum sonic_fw_rule_flags */
	__u32 id;           /* unique and increasing; keys the token buckets */
	__u32 ifindex;      /* 0: every interface */
	__u8 action;        /* enum sonic_fw_action */
	__u8 proto;         /* 0: any; IPPROTO_TCP, _UDP, _ICMP (ICMPv6 for IPv6) */
	__u8 src_prefix;    /* IPv6-form prefix length of src (0: none) */
	__u8 dst_prefix;
	__u8 family;        /* AF_INET or AF_INET6 when src or dst says, else 0;
			     * ::/0 holds the IPv4-mapped addresses too */
	__u8 nr_ranges;
	__u16 rate_unit;    /* limit: seconds RATE is counted over (1, 60, 3600) */
	__u32 rate;         /* limit: packets per rate_unit */
	__u32 burst;        /* limit: packets let through at once */
	__u32 reserved;
	__u64 interval_ns;  /* limit: rate_unit / rate */
	__u64 tolerance_ns; /* limit: (burst - 1) * interval_ns */
	__u8 src[16];
	__u8 dst[16];
	struct sonic_fw_range ranges[SONIC_FW_MAX_RANGES];
};

/* Global state the program reads once per packet (fw_config, key 0). */
struct sonic_fw_config {
	__u64 any_port; /* slots of rules without dport */
	__u32 rules;    /* rules in use: 0 skips the rule lookups */
	__u32 next_id;  /* written by sonic: ids never repeat while the
			 * family is loaded, so no stale bucket fits a rule */
};

/* Port index entry key: rules with dport, per protocol and port. */
struct sonic_fw_port_key {
	__u8 proto;
	__u8 reserved;
	__u16 port; /* host byte order */
};

/* Hits of one rule slot (per CPU); reset when a rule takes the slot. */
struct sonic_fw_rule_stats {
	__u64 packets; /* matched */
	__u64 bytes;   /* IP bytes of those */
	__u64 limited; /* limit: dropped above the rate */
	__u64 limited_bytes;
};

/*
 * Generic cell rate algorithm, the token bucket in one word: the time the
 * next packet is due at the rate. A packet passes when that time is at most
 * tolerance_ns ahead of now, and moves it one interval on with a
 * compare-and-swap, so CPUs sharing a source never lose an update.
 */
struct sonic_fw_bucket_key {
	__u32 rule_id;
	__u32 reserved;
	__u8 addr[16]; /* the packet's source, IPv6 form */
};

struct sonic_fw_bucket {
	__u64 tat; /* CLOCK_MONOTONIC ns, read precisely (the other times of
		    * fw are the coarse clock's: a tick's precision is plenty
		    * for expiries and flows, and costs a tenth) */
};

/*
 * A blocked prefix (fw_blocklist, keyed by sonic_fw_lpm_key). A blocked
 * packet costs the lookup and one atomic add, and makes no flow entry: a
 * flood from spoofed sources must not push real flows out of fw_flows.
 */
struct sonic_fw_block {
	__u64 expires; /* CLOCK_MONOTONIC ns; 0: never. Expired entries drop
			* nothing; sonic removes them. */
	__u64 added;   /* Unix time in seconds */
	__u64 packets; /* dropped by this entry */
	__u32 prefixlen; /* of the key: a lookup that finds an expired entry
			  * tries the shorter prefixes that cover it */
	__u32 reserved;
	char reason[SONIC_FW_REASON_LEN]; /* NUL-terminated */
};

/* One direction of a 5-tuple as it arrived on an interface (fw_flows). */
struct sonic_fw_flow_key {
	__u8 src[16];   /* IPv6 form */
	__u8 dst[16];
	__u16 sport;    /* host byte order; ICMP: 0 */
	__u16 dport;    /* host byte order; ICMP: type << 8 | code */
	__u32 ifindex;
	__u8 proto;
	__u8 reserved[3];
};

enum sonic_fw_verdict {
	SONIC_FW_V_PASSED = 1,    /* no rule matched */
	SONIC_FW_V_PASSED_RULE,   /* a pass rule */
	SONIC_FW_V_LIMIT_PASSED,  /* a limit rule, within the rate */
	SONIC_FW_V_LIMIT_DROPPED, /* a limit rule, above the rate */
	SONIC_FW_V_DROPPED_RULE,  /* a drop rule */
};

struct sonic_fw_flow {
	__u64 packets;
	__u64 bytes;      /* IP bytes */
	__u64 dropped;    /* packets of those dropped */
	__u64 first_seen; /* CLOCK_MONOTONIC_COARSE ns */
	__u64 last_seen;
	__u32 verdict;    /* of the last packet: enum sonic_fw_verdict */
	__u32 rule_id;    /* the rule that decided it; 0: none */
};

enum sonic_fw_counter {
	SONIC_FW_PACKETS,          /* IP packets seen (bytes: of all of them) */
	SONIC_FW_BYTES,
	SONIC_FW_PASSED,           /* no rule matched */
	SONIC_FW_PASSED_RULE,
	SONIC_FW_DROPPED_RULE,
	SONIC_FW_DROPPED_BLOCKLIST,
	SONIC_FW_LIMIT_PASSED,
	SONIC_FW_LIMIT_DROPPED,
	SONIC_FW_PASSED_NOT_IP,    /* ARP and the like: passed untouched */
	SONIC_FW_PASSED_MALFORMED, /* IP header cut short: the stack drops it */
	SONIC_FW_FRAGMENTS,        /* later fragments: no ports to match */
	SONIC_FW_FLOWS_FAILED,     /* flow entries that could not be made */
	SONIC_FW_NR_COUNTERS,
};

struct sonic_fw_stats {
	__u64 counter[SONIC_FW_NR_COUNTERS];
};

#endif /* SONIC_ABI_H */
