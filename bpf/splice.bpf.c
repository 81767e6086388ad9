// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * splice: TCP tunnels forwarded by the kernel.
 *
 * The proxy pairs a client socket with its upstream socket by putting both
 * in splice_socks (keyed by socket cookie) and writing each one's state in
 * splice_state. From then on splice_verdict runs for every buffer either
 * socket receives (sk_skb verdict without a parser: the buffer has already
 * been taken off the receive queue) and redirects it to the peer's egress:
 * the kernel queues it on the peer's psock and a worker sends it.
 *
 * A buffer is never dropped. When the peer cannot take it (not in the map,
 * or its psock backlog above SONIC_SPLICE_BACKLOG_LIMIT) the buffer is
 * passed to the receiving socket itself, where the proxy reads it, and the
 * direction stays that way (SONIC_SPLICE_COPY) until the peer's send
 * sequence shows that every byte redirected and every byte passed has gone
 * into its send queue: only then can a redirect not overtake a byte that
 * userspace has yet to forward.
 *
 * The byte counts in the state let the proxy tell when every byte of a
 * direction has left the psock backlog for the peer's send queue, the
 * condition for passing a half-close on (core/bpf/splice.hpp).
 */
#include "sonic_bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SONIC_SPLICE_MAX_SOCKS);
	__type(key, __u64);
	__type(value, __u64);
} splice_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SONIC_SPLICE_MAX_SOCKS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct sonic_splice_sock);
} splice_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sonic_splice_stats);
} splice_stats SEC(".maps");

SONIC_META_MAP(splice);

static __always_inline void count(struct sonic_splice_stats *s, __u32 idx,
				  __u64 n)
{
	if (s && idx < SONIC_SPLICE_NR_COUNTERS)
		__sync_fetch_and_add(&s->counter[idx], n);
}

static __always_inline __u32 write_seq_of(__u64 sk_addr)
{
	struct tcp_sock___sonic *tp = (void *)sk_addr;
	__u32 seq = 0;

	bpf_probe_read_kernel(&seq, sizeof(seq), &tp->write_seq);
	return seq;
}

/*
 * First buffer of a direction: finds the peer, remembers its address and
 * where its send sequence stood, so the backlog can be sized later without
 * a map lookup. Returns 0 when the peer is not in the map.
 */
static __always_inline int start(struct sonic_splice_sock *st)
{
	struct bpf_sock *peer;
	__u64 key = st->peer;

	peer = bpf_map_lookup_elem(&splice_socks, &key);
	if (!peer)
		return 0;
	st->peer_addr = (__u64)peer;
	bpf_sk_release(peer);
	st->peer_base = write_seq_of(st->peer_addr);
	st->flags |= SONIC_SPLICE_STARTED;
	return 1;
}

/* Bytes of this direction the peer has not put in its send queue yet: the
 * peer's worker sends what was redirected, the proxy writes what was passed
 * (and nothing else to a paired socket), in the one sequence space. */
static __always_inline __u32 pending(const struct sonic_splice_sock *st)
{
	__u32 sent = write_seq_of(st->peer_addr) - st->peer_base;

	return (__u32)(st->redirected + st->passed) - sent;
}

/* Whether the peer's send buffer is full: its reader, not its worker, is
 * what holds the backlog back. */
static __always_inline int send_buffer_full(__u64 sk_addr)
{
	struct sock *sk = (void *)sk_addr;
	int queued = 0, limit = 0;

	bpf_probe_read_kernel(&queued, sizeof(queued), &sk->sk_wmem_queued);
	bpf_probe_read_kernel(&limit, sizeof(limit), &sk->sk_sndbuf);
	return queued >= limit;
}

static __always_inline int overflowing(const struct sonic_splice_sock *st)
{
	__u32 backlog = pending(st);

	if (backlog > SONIC_SPLICE_BACKLOG_HARD_LIMIT)
		return 1;
	return backlog > SONIC_SPLICE_BACKLOG_LIMIT && send_buffer_full(st->peer_addr);
}

SEC("sk_skb/stream_verdict")
int splice_verdict(struct __sk_buff *skb)
{
	struct sonic_splice_stats *s;
	struct sonic_splice_sock *st;
	__u32 len = skb->len;
	__u32 zero = 0;
	__u64 cookie;

	s = bpf_map_lookup_elem(&splice_stats, &zero);
	/* A bare FIN reaches the verdict as an empty buffer: sent on, it would
	 * make the peer's worker see a zero-length send as a broken pipe. The
	 * proxy passes the half-close on itself. */
	if (!len) {
		count(s, SONIC_SPLICE_EMPTY, 1);
		return SK_DROP;
	}
	cookie = bpf_get_socket_cookie(skb);
	st = bpf_map_lookup_elem(&splice_state, &cookie);
	if (!st) {
		count(s, SONIC_SPLICE_NO_STATE, 1);
		return SK_PASS;
	}
	if (st->flags & SONIC_SPLICE_COPY) {
		/* A direction that never started has no base to compare with. */
		if (!(st->flags & SONIC_SPLICE_STARTED) || pending(st))
			goto pass;
		st->flags &= ~(SONIC_SPLICE_COPY | SONIC_SPLICE_OVERFLOW);
		count(s, SONIC_SPLICE_RESUMED, 1);
	} else if (!(st->flags & SONIC_SPLICE_STARTED)) {
		if (!start(st))
			goto no_peer;
		count(s, SONIC_SPLICE_STREAMS, 1);
	} else if (overflowing(st)) {
		st->flags |= SONIC_SPLICE_COPY | SONIC_SPLICE_OVERFLOW;
		count(s, SONIC_SPLICE_OVERFLOWS, 1);
		goto pass;
	}
	if (bpf_sk_redirect_hash(skb, &splice_socks, &st->peer, 0) != SK_PASS)
		goto no_peer;
	__sync_fetch_and_add(&st->redirected, len);
	count(s, SONIC_SPLICE_REDIRECTS, 1);
	count(s, SONIC_SPLICE_REDIRECT_BYTES, len);
	count(s, (st->flags & SONIC_SPLICE_CLIENT) ? SONIC_SPLICE_CLIENT_BYTES :
						     SONIC_SPLICE_UPSTREAM_BYTES,
	      len);
	return SK_PASS;

no_peer:
	st->flags |= SONIC_SPLICE_COPY;
	count(s, SONIC_SPLICE_NO_PEER, 1);
pass:
	__sync_fetch_and_add(&st->passed, len);
	count(s, SONIC_SPLICE_PASSED, 1);
	count(s, SONIC_SPLICE_PASSED_BYTES, len);
	return SK_PASS;
}
