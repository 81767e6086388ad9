// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * accel: local socket acceleration.
 *
 * accel_sockops runs when a TCP connection of a process in an enabled cgroup
 * becomes established. If both ends are local it puts the socket in
 * accel_socks, keyed by its 4-tuple and network namespace. accel_msg runs on
 * every sendmsg of such a socket and moves the data straight into the peer's
 * receive queue (BPF_F_INGRESS), skipping TCP/IP and loopback. It always
 * returns SK_PASS: a peer that is not in the map gets the data through the
 * normal stack.
 *
 * Byte order across the two paths: the receiver reads redirected data before
 * anything in its TCP receive queue, so a direction must never go from the
 * stack to a redirect. A socket whose send missed (its peer was not in the
 * map yet) therefore never redirects again, and a connection that carried
 * payload before it was established (TCP Fast Open) is not inserted at all.
 * The other way round, redirect first and stack later, keeps the order.
 *
 * Scope proxy (SONIC_ACCEL_CG_PROXY_LEGS): only the legs of a sonic proxy are
 * accelerated, not every local connection of the cgroup. A leg is a
 * connection to an endpoint a running proxy recorded in accel_proxy_listen
 * (both its client's socket and the one the proxy accepted), or one the
 * proxy opened itself: its upstream sockets carry SONIC_STEER_BYPASS_MARK.
 * The server end of such an upstream connection is recognised by its key,
 * which the proxy's socket left in accel_proxy_peers when it became
 * established: on loopback the connecting side always gets there first.
 *
 * Flow control: a redirect bypasses TCP's window, so when the peer's queue of
 * redirected data passes SONIC_ACCEL_QUEUE_LIMIT the direction takes the
 * stack, whose window slows the writer. It redirects again only when the
 * peer's application has read every byte sent through the stack, so nothing
 * can be overtaken, and the queue is below half the limit.
 *
 * A socket is never simply deleted from accel_socks: deleting it would drop
 * bytes already redirected to it but not yet read. A release marks sockets
 * draining, which stops redirects from and to them, and removes each one only
 * once its queue of redirected data is empty. Two programs do this, one per
 * release path, with the same per-socket step (release_visit):
 *  - accel_release, an iterator over the SOCKHASH, one pass per call, where
 *    the kernel runs tracing programs;
 *  - accel_release_one, a tc program that sonic runs through
 *    BPF_PROG_TEST_RUN once per key of a userspace walk of the SOCKHASH,
 *    where the kernel refuses tracing programs (lockdown, a BPF LSM). tc
 *    programs may look sockets up in a SOCKHASH and delete them from it.
 */
#include "sonic_bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SONIC_ACCEL_MAX_SOCKS);
	__type(key, struct sonic_accel_key);
	__type(value, __u64);
} accel_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sonic_accel_sock);
} accel_sk SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_STORAGE);
	__type(key, struct bpf_cgroup_storage_key);
	__type(value, struct sonic_accel_cgroup);
} accel_cg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SONIC_ACCEL_MAX_FILTERED_CGROUPS);
	__type(key, __u64);
	__type(value, struct sonic_accel_ports);
} accel_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SONIC_ACCEL_MAX_LOCAL_ADDRS);
	__type(key, struct sonic_accel_local_key);
	__type(value, __u8);
} accel_local SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sonic_accel_stats);
} accel_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SONIC_ACCEL_MAX_PROXY_LISTENERS);
	__type(key, struct sonic_accel_endpoint);
	__type(value, struct sonic_accel_proxy);
} accel_proxy_listen SEC(".maps");

/* Keys of the server ends of proxy upstream connections, until they are
 * established (LRU: an end that never shows up ages out). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SONIC_ACCEL_MAX_PROXY_PEERS);
	__type(key, struct sonic_accel_key);
	__type(value, __u8);
} accel_proxy_peers SEC(".maps");

/* Keys whose sockets the MARK pass wants marked too (the peers). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SONIC_ACCEL_MAX_SOCKS);
	__type(key, struct sonic_accel_key);
	__type(value, __u8);
} accel_drain SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sonic_accel_iter);
} accel_iter SEC(".maps");

SONIC_META_MAP(accel);

static __always_inline struct sonic_accel_stats *stats(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&accel_stats, &zero);
}

static __always_inline void count(struct sonic_accel_stats *s, __u32 idx,
				  __u64 n)
{
	if (s && idx < SONIC_ACCEL_NR_COUNTERS)
		__sync_fetch_and_add(&s->counter[idx], n);
}

static __always_inline int is_loopback(const __u32 a[4])
{
	if (a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == bpf_htonl(1))
		return 1; /* ::1 */
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff) &&
	       (a[3] & bpf_htonl(0xff000000)) == bpf_htonl(0x7f000000);
}

static __always_inline int is_local(__u64 netns, const __u32 a[4])
{
	struct sonic_accel_local_key k = { .netns = netns };

	if (is_loopback(a))
		return 1;
	k.addr[0] = a[0];
	k.addr[1] = a[1];
	k.addr[2] = a[2];
	k.addr[3] = a[3];
	return bpf_map_lookup_elem(&accel_local, &k) != NULL;
}

/* The key of the socket a sockops program runs for; 0 if not inet. */
static __always_inline int key_of_sockops(struct bpf_sock_ops *ops,
					  struct sonic_accel_key *k)
{
	__u32 family = CTX_U32(ops, family);

	if (family == AF_INET) {
		k->local_ip[2] = bpf_htonl(0xffff);
		k->local_ip[3] = CTX_U32(ops, local_ip4);
		k->remote_ip[2] = bpf_htonl(0xffff);
		k->remote_ip[3] = CTX_U32(ops, remote_ip4);
	} else if (family == AF_INET6) {
		k->local_ip[0] = CTX_U32(ops, local_ip6[0]);
		k->local_ip[1] = CTX_U32(ops, local_ip6[1]);
		k->local_ip[2] = CTX_U32(ops, local_ip6[2]);
		k->local_ip[3] = CTX_U32(ops, local_ip6[3]);
		k->remote_ip[0] = CTX_U32(ops, remote_ip6[0]);
		k->remote_ip[1] = CTX_U32(ops, remote_ip6[1]);
		k->remote_ip[2] = CTX_U32(ops, remote_ip6[2]);
		k->remote_ip[3] = CTX_U32(ops, remote_ip6[3]);
	} else {
		return 0;
	}
	k->local_port = CTX_U32(ops, local_port);
	k->remote_port = bpf_ntohl(CTX_U32(ops, remote_port));
	k->netns = bpf_get_netns_cookie(ops);
	return 1;
}

/* The key under which the peer of the sending socket is stored. */
static __always_inline void peer_key_of_msg(struct sk_msg_md *msg,
					    struct sonic_accel_key *k)
{
	if (CTX_U32(msg, family) == AF_INET) {
		k->remote_ip[2] = bpf_htonl(0xffff);
		k->remote_ip[3] = CTX_U32(msg, local_ip4);
		k->local_ip[2] = bpf_htonl(0xffff);
		k->local_ip[3] = CTX_U32(msg, remote_ip4);
	} else {
		k->remote_ip[0] = CTX_U32(msg, local_ip6[0]);
		k->remote_ip[1] = CTX_U32(msg, local_ip6[1]);
		k->remote_ip[2] = CTX_U32(msg, local_ip6[2]);
		k->remote_ip[3] = CTX_U32(msg, local_ip6[3]);
		k->local_ip[0] = CTX_U32(msg, remote_ip6[0]);
		k->local_ip[1] = CTX_U32(msg, remote_ip6[1]);
		k->local_ip[2] = CTX_U32(msg, remote_ip6[2]);
		k->local_ip[3] = CTX_U32(msg, remote_ip6[3]);
	}
	k->remote_port = CTX_U32(msg, local_port);
	k->local_port = bpf_ntohl(CTX_U32(msg, remote_port));
	k->netns = bpf_get_netns_cookie(msg);
}

static __always_inline void mirror(const struct sonic_accel_key *k,
				   struct sonic_accel_key *peer)
{
	peer->netns = k->netns;
	peer->local_ip[0] = k->remote_ip[0];
	peer->local_ip[1] = k->remote_ip[1];
	peer->local_ip[2] = k->remote_ip[2];
	peer->local_ip[3] = k->remote_ip[3];
	peer->remote_ip[0] = k->local_ip[0];
	peer->remote_ip[1] = k->local_ip[1];
	peer->remote_ip[2] = k->local_ip[2];
	peer->remote_ip[3] = k->local_ip[3];
	peer->local_port = k->remote_port;
	peer->remote_port = k->local_port;
	peer->reserved = 0;
}

static __always_inline int is_proxy_listener(__u64 netns, const __u32 a[4],
					     __u16 port)
{
	struct sonic_accel_endpoint e = { .netns = netns, .port = port };

	if (bpf_map_lookup_elem(&accel_proxy_listen, &e))
		return 1; /* a wildcard listener */
	e.addr[0] = a[0];
	e.addr[1] = a[1];
	e.addr[2] = a[2];
	e.addr[3] = a[3];
	return bpf_map_lookup_elem(&accel_proxy_listen, &e) != NULL;
}

/* Whether the connection of the socket KEY (scope proxy) has a sonic proxy at
 * one end. */
static __always_inline int is_proxy_leg(struct bpf_sock *sk, __u32 op,
					const struct sonic_accel_key *key)
{
	struct sonic_accel_key peer;
	__u8 one = 1;

	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) {
		if (sk->mark == SONIC_STEER_BYPASS_MARK) {
			/* The proxy's upstream socket: its server end is
			 * established right after it. */
			mirror(key, &peer);
			bpf_map_update_elem(&accel_proxy_peers, &peer, &one,
					    BPF_ANY);
			return 1;
		}
		return is_proxy_listener(key->netns, key->remote_ip,
					 key->remote_port);
	}
	if (is_proxy_listener(key->netns, key->local_ip, key->local_port))
		return 1;
	if (bpf_map_lookup_elem(&accel_proxy_peers, key)) {
		bpf_map_delete_elem(&accel_proxy_peers, key);
		return 1;
	}
	return 0;
}

SEC("sockops")
int accel_sockops(struct bpf_sock_ops *ops)
{
	struct sonic_accel_key key = {};
	struct sonic_accel_cgroup *cg;
	struct sonic_accel_sock *st;
	struct sonic_accel_stats *s;
	struct bpf_sock *sk;
	__u32 op = CTX_U32(ops, op);
	__u16 server_port;

	if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	/* Payload already went through the stack (Fast Open data in the SYN,
	 * acked beyond the SYN's sequence number): redirecting later data
	 * would overtake it. */
	if (CTX_U64(ops, bytes_received) > 0 || CTX_U64(ops, bytes_acked) > 1)
		return 1;
	cg = bpf_get_local_storage(&accel_cg, 0);
	if (!cg->cgroup_id)
		return 1; /* attachment made, not configured yet */
	if (!key_of_sockops(ops, &key))
		return 1;
	s = stats();
	if (!is_local(key.netns, key.remote_ip)) {
		count(s, SONIC_ACCEL_SKIPPED_REMOTE, 1);
		return 1;
	}
	sk = ops->sk;
	if (!sk)
		return 1;
	st = bpf_sk_storage_get(&accel_sk, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st || st->flags)
		return 1; /* an enabled descendant cgroup already decided */
	st->cgroup_id = cg->cgroup_id;

	if (cg->flags & SONIC_ACCEL_CG_PORT_FILTER) {
		__u64 cgid = cg->cgroup_id;
		struct sonic_accel_ports *ports;

		server_port = op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB ?
				      key.remote_port :
				      key.local_port;
		ports = bpf_map_lookup_elem(&accel_ports, &cgid);
		if (!ports || !(ports->bits[(server_port >> 6) & 1023] &
				(1ULL << (server_port & 63)))) {
			st->flags = SONIC_ACCEL_SOCK_SKIPPED;
			count(s, SONIC_ACCEL_SKIPPED_PORT, 1);
			return 1;
		}
	}
	if ((cg->flags & SONIC_ACCEL_CG_PROXY_LEGS) && !is_proxy_leg(sk, op, &key)) {
		st->flags = SONIC_ACCEL_SOCK_SKIPPED;
		count(s, SONIC_ACCEL_SKIPPED_NOT_PROXY, 1);
		return 1;
	}
	if (bpf_sock_hash_update(ops, &accel_socks, &key, BPF_NOEXIST)) {
		st->flags = SONIC_ACCEL_SOCK_SKIPPED;
		count(s, SONIC_ACCEL_INSERT_FAILED, 1);
		return 1;
	}
	st->flags = SONIC_ACCEL_SOCK_ACCELERATED;
	count(s, SONIC_ACCEL_INSERTED, 1);
	return 1;
}

/* A socket pointer of the kernel's struct sk_msg behind the context, as an
 * address: sk_msg programs may not do arithmetic on their typed pointers. */
#define MSG_SOCK_ADDR(msg, field)                                              \
	({                                                                     \
		__u64 __a = 0;                                                 \
		bpf_probe_read_kernel(                                         \
			&__a, sizeof(__a),                                     \
			(void *)(msg) + bpf_core_field_offset(                 \
						struct sk_msg___sonic, field)); \
		__a;                                                           \
	})

/* Messages of a psock's ingress queue that are summed where the kernel does
 * not keep the total (before Linux 6.10). A longer queue counts as full:
 * its reader is far enough behind for flow control to step in. */
#define QUEUE_WALK 128

/* Bytes of redirected data queued on a psock, by kernel address: the
 * kernel's own total where it has one, else the sum of the first QUEUE_WALK
 * messages' sizes. Read without the psock's lock, so only an estimate, which
 * is all flow control and the release report need. */
static __always_inline __u32 psock_queued(struct sk_psock___sonic *psock)
{
	struct list_head___sonic *head = &psock->ingress_msg;
	struct list_head___sonic *node;
	struct sk_msg___sonic *msg;
	__u32 total = 0, size;
	int i;

	if (bpf_core_field_exists(psock->msg_tot_len))
		return BPF_CORE_READ(psock, msg_tot_len);
	node = BPF_CORE_READ(psock, ingress_msg.next);
	for (i = 0; i < QUEUE_WALK; i++) {
		if (!node || node == head)
			return total;
		msg = (void *)node - bpf_core_field_offset(struct sk_msg___sonic, list);
		size = BPF_CORE_READ(msg, sg.size);
		total += size;
		node = BPF_CORE_READ(node, next);
	}
	return total > SONIC_ACCEL_QUEUE_LIMIT ? total : SONIC_ACCEL_QUEUE_LIMIT + 1;
}

/* The psock of a socket, by the socket's kernel address (NULL if none). */
static __always_inline struct sk_psock___sonic *psock_of(struct sock *sk)
{
	unsigned long ud = (unsigned long)BPF_CORE_READ(sk, sk_user_data);

	return (void *)(ud & SONIC_SK_USER_DATA_PTRMASK);
}

/* Bytes of redirected data queued on a socket, by kernel address. */
static __always_inline __u32 queued_on(__u64 sk_addr)
{
	struct sk_psock___sonic *psock = psock_of((struct sock *)sk_addr);

	return psock ? psock_queued(psock) : 0;
}

/* Whether PEER's application has read every byte SELF wrote through the
 * stack: both counters live in the one sequence space of this direction. */
static __always_inline int stack_drained(__u64 self_addr, __u64 peer_addr)
{
	struct tcp_sock___sonic *self = (void *)self_addr;
	struct tcp_sock___sonic *peer = (void *)peer_addr;
	__u32 write_seq = 0, copied_seq = 1;

	bpf_probe_read_kernel(&write_seq, sizeof(write_seq), &self->write_seq);
	bpf_probe_read_kernel(&copied_seq, sizeof(copied_seq), &peer->copied_seq);
	return write_seq == copied_seq;
}

SEC("sk_msg")
int accel_msg(struct sk_msg_md *msg)
{
	struct sonic_accel_key key = {};
	struct sonic_accel_stats *s = stats();
	struct sonic_accel_sock *st;
	struct bpf_sock *sk = msg->sk;
	__u32 size = CTX_U32(msg, size);

	if (!sk)
		return SK_PASS;
	st = bpf_sk_storage_get(&accel_sk, sk, 0, 0);
	if (!st || (st->flags & SONIC_ACCEL_SOCK_DRAINING)) {
		count(s, SONIC_ACCEL_PASSED_DRAINING, 1);
		return SK_PASS;
	}
	if (st->flags & SONIC_ACCEL_SOCK_OVERFLOW) {
		if (queued_on(st->peer) > SONIC_ACCEL_QUEUE_LIMIT / 2 ||
		    !stack_drained(MSG_SOCK_ADDR(msg, sk), st->peer))
			goto overflow;
		st->flags &= ~SONIC_ACCEL_SOCK_OVERFLOW;
		count(s, SONIC_ACCEL_RESUMED, 1);
	} else if (st->peer && st->unchecked >= SONIC_ACCEL_QUEUE_CHECK) {
		st->unchecked = 0;
		if (queued_on(st->peer) > SONIC_ACCEL_QUEUE_LIMIT) {
			st->flags |= SONIC_ACCEL_SOCK_OVERFLOW;
			count(s, SONIC_ACCEL_OVERFLOWS, 1);
			goto overflow;
		}
	}
	peer_key_of_msg(msg, &key);
	if (bpf_msg_redirect_hash(msg, &accel_socks, &key, BPF_F_INGRESS) ==
	    SK_PASS) {
		if (!st->peer)
			st->peer = MSG_SOCK_ADDR(msg, sk_redir);
		st->unchecked += size;
		count(s, SONIC_ACCEL_REDIRECTS, 1);
		count(s, SONIC_ACCEL_REDIRECT_BYTES, size);
	} else {
		/* This message takes the stack; later ones must too, or they
		 * would overtake it at the receiver. */
		st->flags |= SONIC_ACCEL_SOCK_DRAINING;
		count(s, SONIC_ACCEL_MISSES, 1);
		count(s, SONIC_ACCEL_MISS_BYTES, size);
	}
	return SK_PASS;

overflow:
	count(s, SONIC_ACCEL_PASSED_OVERFLOW, 1);
	count(s, SONIC_ACCEL_PASSED_OVERFLOW_BYTES, size);
	return SK_PASS;
}

/* True when no redirected data waits on the socket's psock; BYTES gets
 * what does. */
static __always_inline int ingress_empty(struct sock *sk, __u64 *bytes)
{
	struct sk_psock___sonic *psock = psock_of(sk);
	struct list_head___sonic *first;

	if (!psock)
		return 1;
	first = BPF_CORE_READ(psock, ingress_msg.next);
	if (first == &psock->ingress_msg)
		return 1;
	*bytes = psock_queued(psock);
	return 0;
}

/* One socket of a release pass (struct sonic_accel_iter says which pass):
 * KEY is its SOCKHASH key, ST its state, SK its kernel address. */
static __always_inline void release_visit(struct sonic_accel_iter *it,
					  struct sonic_accel_key *key,
					  struct sonic_accel_sock *st,
					  struct sock *sk)
{
	struct sonic_accel_key peer;
	__u64 bytes = 0;
	__u8 one = 1;

	it->visited++;
	switch (it->op) {
	case SONIC_ACCEL_ITER_MARK:
		if (!st)
			break;
		if ((!it->cgroup_id || st->cgroup_id == it->cgroup_id) &&
		    !(st->flags & SONIC_ACCEL_SOCK_DRAINING)) {
			st->flags |= SONIC_ACCEL_SOCK_DRAINING;
			it->marked++;
		}
		/* Peers of every draining socket, including one that marked
		 * itself on a miss: the release pass must not remove a socket
		 * a peer may still be redirecting into. */
		if (st->flags & SONIC_ACCEL_SOCK_DRAINING) {
			mirror(key, &peer);
			bpf_map_update_elem(&accel_drain, &peer, &one, BPF_ANY);
		}
		break;
	case SONIC_ACCEL_ITER_MARK_PEERS:
		if (st && bpf_map_lookup_elem(&accel_drain, key) &&
		    !(st->flags & SONIC_ACCEL_SOCK_DRAINING)) {
			st->flags |= SONIC_ACCEL_SOCK_DRAINING;
			it->marked++;
		}
		break;
	case SONIC_ACCEL_ITER_RELEASE:
		if (!st || !(st->flags & SONIC_ACCEL_SOCK_DRAINING))
			break;
		if (ingress_empty(sk, &bytes)) {
			if (!bpf_map_delete_elem(&accel_socks, key)) {
				it->released++;
				count(stats(), SONIC_ACCEL_RELEASED, 1);
			}
		} else {
			it->pending++;
			it->pending_bytes += bytes;
		}
		break;
	case SONIC_ACCEL_ITER_COUNT:
		if (st && (st->flags & SONIC_ACCEL_SOCK_DRAINING)) {
			it->pending++;
			if (!ingress_empty(sk, &bytes))
				it->pending_bytes += bytes;
		}
		break;
	}
}

static __always_inline struct sonic_accel_iter *release_pass(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&accel_iter, &zero);
}

SEC("iter/sockmap")
int accel_release(struct bpf_iter__sockmap *ctx)
{
	struct sonic_accel_iter *it = release_pass();
	struct sock *sk = ctx->sk;
	struct sonic_accel_key key;

	if (!it || !sk || !ctx->key)
		return 0;
	if (bpf_probe_read_kernel(&key, sizeof(key), ctx->key))
		return 0;
	release_visit(it, &key, bpf_sk_storage_get(&accel_sk, sk, 0, 0), sk);
	return 0;
}

/* Run by sonic through BPF_PROG_TEST_RUN with a packet of ETH_HLEN bytes
 * followed by one SOCKHASH key. */
SEC("tc")
int accel_release_one(struct __sk_buff *skb)
{
	struct sonic_accel_iter *it = release_pass();
	struct sonic_accel_key key;
	struct bpf_sock *sk;
	struct sock *ks;

	if (!it || bpf_skb_load_bytes(skb, SONIC_ACCEL_RELEASE_KEY_OFFSET, &key,
				      sizeof(key)))
		return 0;
	sk = bpf_map_lookup_elem(&accel_socks, &key);
	if (!sk)
		return 0;
	ks = (struct sock *)bpf_skc_to_tcp_sock(sk);
	if (ks)
		release_visit(it, &key,
			      bpf_sk_storage_get(&accel_sk, sk, 0, 0), ks);
	bpf_sk_release(sk);
	return 0;
}
