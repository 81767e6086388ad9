// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * fw: the edge firewall, at XDP on the interfaces sonic attaches it to.
 *
 * Every IP packet meets, in order:
 *  1. the blocklist (fw_blocklist, an LPM trie of source prefixes whose
 *     entries carry an expiry time): a live entry drops the packet;
 *  2. the rules (fw_rules, indexed by slot). A packet's candidate rules are
 *     the AND of three masks: the rules whose src prefix covers its source
 *     (fw_src: the longest prefix in the trie holds every rule whose prefix
 *     contains it), the same for its destination (fw_dst), and the rules of
 *     its protocol and destination port (fw_ports) or without dport. Among
 *     the candidates that match interface, protocol and TCP flags, the
 *     lowest id (the earliest added) decides: drop, pass, or limit, a
 *     per-source token bucket (fw_buckets) that passes within the rate and
 *     drops above it.
 *  3. the flow table (fw_flows, LRU), which counts the packet against its
 *     5-tuple with the verdict. Blocked packets skip it: they are counted on
 *     their blocklist entry, so a flood from many spoofed sources costs the
 *     least possible and evicts no real flow.
 *
 * Times come from the coarse monotonic clock (a tick's precision, a tenth
 * of the cost of a precise read in a VM), except the token buckets', which
 * need nanoseconds.
 * Anything that is not IP passes untouched. Adding a rule or a block is a
 * map update; nothing is reloaded.
 */
#include "sonic_bpf.h"

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_DEST 60
#define IPPROTO_ICMPV6_ 58

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SONIC_FW_MAX_RULES);
	__type(key, __u32);
	__type(value, struct sonic_fw_rule);
} fw_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SONIC_FW_MAX_RULES);
	__type(key, __u32);
	__type(value, struct sonic_fw_rule_stats);
} fw_rule_stats SEC(".maps");

/* Rule prefixes: each entry holds the slots of the rules whose prefix
 * covers it (see the top of this file). */
#define FW_PREFIX_TRIE(name)                                                   \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);                           \
		__uint(map_flags, BPF_F_NO_PREALLOC);                          \
		__uint(max_entries, SONIC_FW_MAX_PREFIXES);                    \
		__type(key, struct sonic_fw_lpm_key);                          \
		__type(value, __u64);                                          \
	} name SEC(".maps")

FW_PREFIX_TRIE(fw_src);
FW_PREFIX_TRIE(fw_dst);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SONIC_FW_MAX_PORT_ENTRIES);
	__type(key, struct sonic_fw_port_key);
	__type(value, __u64);
} fw_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sonic_fw_config);
} fw_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SONIC_FW_DEFAULT_BUCKETS);
	__type(key, struct sonic_fw_bucket_key);
	__type(value, struct sonic_fw_bucket);
} fw_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, SONIC_FW_DEFAULT_BLOCKLIST);
	__type(key, struct sonic_fw_lpm_key);
	__type(value, struct sonic_fw_block);
} fw_blocklist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SONIC_FW_DEFAULT_FLOWS);
	__type(key, struct sonic_fw_flow_key);
	__type(value, struct sonic_fw_flow);
} fw_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sonic_fw_stats);
} fw_stats SEC(".maps");

SONIC_META_MAP(fw);

/* A packet as the rules see it. */
struct pkt {
	__u8 src[16]; /* IPv6 form */
	__u8 dst[16];
	__u16 sport;  /* host byte order */
	__u16 dport;
	__u32 len;    /* IP bytes, from the IP header */
	__u8 proto;   /* as on the wire */
	__u8 rule_proto; /* ICMPv6 as IPPROTO_ICMP: "icmp" means either */
	__u8 ports;   /* sport/dport are a TCP or UDP header's */
	__u8 syn;     /* TCP SYN without ACK */
	__u8 fragment; /* a later fragment: no transport header */
	__u8 family;
};

struct vlan_hdr___sonic {
	__be16 tci;
	__be16 proto;
};

struct ext_hdr___sonic {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct frag_hdr___sonic {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 id;
};

static __always_inline void count(struct sonic_fw_stats *st, __u32 idx, __u64 n)
{
	if (st && idx < SONIC_FW_NR_COUNTERS)
		st->counter[idx] += n; /* per-CPU: no other writer */
}

static __always_inline void mapped4(__u8 out[16], __be32 addr)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &addr, 4);
}

/* The transport header at L4 (protocol P->proto), if it is in the packet. */
static __always_inline void parse_l4(struct pkt *p, void *l4, void *end)
{
	if (p->proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > end)
			return;
		p->sport = bpf_ntohs(tcp->source);
		p->dport = bpf_ntohs(tcp->dest);
		p->syn = tcp->syn && !tcp->ack;
		p->ports = 1;
	} else if (p->proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > end)
			return;
		p->sport = bpf_ntohs(udp->source);
		p->dport = bpf_ntohs(udp->dest);
		p->ports = 1;
	} else if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6_) {
		__u8 *icmp = l4;

		if ((void *)(icmp + 2) > end)
			return;
		p->dport = (__u16)icmp[0] << 8 | icmp[1]; /* type, code */
	}
}

/* Skips IPv6 extension headers; returns the transport header or NULL for a
 * later fragment. P->proto becomes the transport protocol. */
static __always_inline void *skip_ext(struct pkt *p, void *l4, void *end)
{
	for (int i = 0; i < SONIC_FW_MAX_EXT_HEADERS; i++) {
		struct ext_hdr___sonic *h = l4;

		if (p->proto != NEXTHDR_HOP && p->proto != NEXTHDR_ROUTING &&
		    p->proto != NEXTHDR_DEST && p->proto != NEXTHDR_AUTH &&
		    p->proto != NEXTHDR_FRAGMENT)
			return l4;
		if ((void *)(h + 1) > end)
			return l4; /* cut short: no ports */
		if (p->proto == NEXTHDR_FRAGMENT) {
			struct frag_hdr___sonic *f = l4;

			if ((void *)(f + 1) > end)
				return l4;
			p->proto = f->nexthdr;
			if (f->frag_off & bpf_htons(0xfff8))
				return 0;
			l4 += sizeof(*f);
			continue;
		}
		p->proto = h->nexthdr;
		if (p->proto == NEXTHDR_AUTH)
			l4 += ((__u32)h->hdrlen + 2) * 4;
		else
			l4 += ((__u32)h->hdrlen + 1) * 8;
	}
	return l4;
}

/* 1: an IP packet, P filled; 0: not IP; -1: an IP header cut short. */
static __always_inline int parse(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3, *l4;
	__be16 type;

	if ((void *)(eth + 1) > end)
		return 0;
	type = eth->h_proto;
	l3 = eth + 1;
	for (int i = 0; i < 2; i++) {
		struct vlan_hdr___sonic *vh = l3;

		if (type != bpf_htons(ETH_P_8021Q) && type != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > end)
			return 0;
		type = vh->proto;
		l3 = vh + 1;
	}
	if (type == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;

		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return -1;
		mapped4(p->src, ip->saddr);
		mapped4(p->dst, ip->daddr);
		p->len = bpf_ntohs(ip->tot_len);
		p->proto = ip->protocol;
		p->rule_proto = ip->protocol;
		p->family = AF_INET;
		if (ip->frag_off & bpf_htons(0x1fff)) {
			p->fragment = 1;
			return 1;
		}
		l4 = l3 + ip->ihl * 4;
	} else if (type == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > end)
			return -1;
		__builtin_memcpy(p->src, &ip6->saddr, 16);
		__builtin_memcpy(p->dst, &ip6->daddr, 16);
		p->len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
		p->proto = ip6->nexthdr;
		p->family = AF_INET6;
		l4 = skip_ext(p, ip6 + 1, end);
		/* "icmp" means ICMPv6 here; ICMPv4 inside IPv6 is nobody's. */
		p->rule_proto = p->proto == IPPROTO_ICMPV6_ ? IPPROTO_ICMP
				: p->proto == IPPROTO_ICMP ? 255 : p->proto;
		if (!l4) {
			p->fragment = 1;
			return 1;
		}
	} else {
		return 0;
	}
	parse_l4(p, l4, end);
	return 1;
}

/* The live blocklist entry covering the source, or NULL. An expired entry
 * hides the shorter prefixes under it from a plain lookup, so those are
 * tried next. The clock is read only for an entry that expires. */
static __always_inline struct sonic_fw_block *blocked(const struct pkt *p)
{
	struct sonic_fw_lpm_key key = { .prefixlen = 128 };
	__u64 now = 0;

	__builtin_memcpy(key.addr, p->src, 16);
	for (int i = 0; i < 8; i++) {
		struct sonic_fw_block *b = bpf_map_lookup_elem(&fw_blocklist, &key);

		if (!b)
			return 0;
		if (!b->expires)
			return b;
		if (!now)
			now = bpf_ktime_get_coarse_ns();
		if (now < b->expires)
			return b;
		if (b->prefixlen == 0 || b->prefixlen > 128)
			return 0;
		key.prefixlen = b->prefixlen - 1;
	}
	return 0;
}

static __always_inline __u64 trie_mask(void *trie, const __u8 addr[16])
{
	struct sonic_fw_lpm_key key = { .prefixlen = 128 };
	__u64 *mask;

	__builtin_memcpy(key.addr, addr, 16);
	mask = bpf_map_lookup_elem(trie, &key);
	return mask ? *mask : 0;
}

struct match_ctx {
	__u64 mask;
	__u32 ifindex;
	__u8 proto;
	__u8 syn;
	__u8 family;
	__u32 best_slot;
	/* The lowest id matched so far; the config's next_id (above every
	 * rule's id) while none has. It starts as a value the verifier cannot
	 * know: before Linux 6.7 it checks a bpf_loop callback once, with the
	 * caller's state, and rewrites a branch that pass never took. With
	 * "none" a known constant (0) and a test `!best_id || id < best_id`,
	 * 6.1 made the test always true, so the last slot won, not the
	 * earliest rule. */
	__u32 best_id;
};

/* One candidate per call, lowest slot first. */
static long match_slot(__u32 i, void *data)
{
	struct match_ctx *c = data;
	struct sonic_fw_rule *r;
	__u32 slot;

	if (!c->mask)
		return 1;
	slot = lowest_bit(c->mask);
	c->mask &= c->mask - 1;
	r = bpf_map_lookup_elem(&fw_rules, &slot);
	if (!r || !(r->flags & SONIC_FW_RULE_IN_USE))
		return 0;
	if (r->ifindex && r->ifindex != c->ifindex)
		return 0;
	if (r->proto && r->proto != c->proto)
		return 0;
	if (r->family && r->family != c->family)
		return 0;
	if ((r->flags & SONIC_FW_RULE_SYN) && !c->syn)
		return 0;
	if (r->id < c->best_id) {
		c->best_id = r->id;
		c->best_slot = slot;
	}
	return c->mask ? 0 : 1;
}

/* Whether a packet from P's source fits in the rule's rate now. */
static __always_inline int within_rate(const struct sonic_fw_rule *r, const struct pkt *p)
{
	__u64 now;
	struct sonic_fw_bucket_key key = { .rule_id = r->id };
	struct sonic_fw_bucket *b;

	__builtin_memcpy(key.addr, p->src, 16);
	b = bpf_map_lookup_elem(&fw_buckets, &key);
	if (!b) {
		struct sonic_fw_bucket fresh = { .tat = bpf_ktime_get_ns() + r->interval_ns };

		if (bpf_map_update_elem(&fw_buckets, &key, &fresh, BPF_NOEXIST) == 0)
			return 1;
		b = bpf_map_lookup_elem(&fw_buckets, &key); /* another CPU made it */
		if (!b)
			return 1;
	}
	now = bpf_ktime_get_ns(); /* buckets need a precise clock */
	for (int i = 0; i < 4; i++) {
		__u64 tat = b->tat;
		__u64 base = tat > now ? tat : now;

		if (base - now > r->tolerance_ns)
			return 0;
		if (__sync_val_compare_and_swap(&b->tat, tat, base + r->interval_ns) == tat)
			return 1;
	}
	return 0; /* lost every race: as good as over the rate */
}

/* Applies the first rule that matches; returns the verdict and its rule. */
static __always_inline __u32 apply_rules(struct xdp_md *ctx, const struct pkt *p, __u32 *rule_id)
{
	struct match_ctx c = { .ifindex = ctx->ingress_ifindex, .proto = p->rule_proto,
			       .syn = p->syn, .family = p->family };
	struct sonic_fw_rule_stats *rs;
	struct sonic_fw_config *cfg;
	struct sonic_fw_rule *r;
	__u32 zero = 0, none;
	__u64 ports;

	cfg = bpf_map_lookup_elem(&fw_config, &zero);
	if (!cfg || !cfg->rules)
		return SONIC_FW_V_PASSED;
	ports = cfg->any_port;
	if (p->ports) {
		struct sonic_fw_port_key pk = { .proto = p->proto, .port = p->dport };
		__u64 *m = bpf_map_lookup_elem(&fw_ports, &pk);

		if (m)
			ports |= *m;
	}
	if (!ports)
		return SONIC_FW_V_PASSED;
	c.mask = ports & trie_mask(&fw_src, p->src);
	if (c.mask)
		c.mask &= trie_mask(&fw_dst, p->dst);
	if (!c.mask)
		return SONIC_FW_V_PASSED;
	none = cfg->next_id; /* read once: `fw add` may move it meanwhile */
	c.best_id = none;
	bpf_loop(SONIC_FW_MAX_RULES, match_slot, &c, 0);
	if (c.best_id == none)
		return SONIC_FW_V_PASSED;
	r = bpf_map_lookup_elem(&fw_rules, &c.best_slot);
	if (!r)
		return SONIC_FW_V_PASSED;
	*rule_id = r->id;
	rs = bpf_map_lookup_elem(&fw_rule_stats, &c.best_slot);
	if (rs) {
		rs->packets++;
		rs->bytes += p->len;
	}
	if (r->action == SONIC_FW_DROP)
		return SONIC_FW_V_DROPPED_RULE;
	if (r->action != SONIC_FW_LIMIT)
		return SONIC_FW_V_PASSED_RULE;
	if (within_rate(r, p))
		return SONIC_FW_V_LIMIT_PASSED;
	if (rs) {
		rs->limited++;
		rs->limited_bytes += p->len;
	}
	return SONIC_FW_V_LIMIT_DROPPED;
}

static __always_inline int dropping(__u32 verdict)
{
	return verdict == SONIC_FW_V_DROPPED_RULE ||
	       verdict == SONIC_FW_V_LIMIT_DROPPED;
}

static __always_inline void flow_count(struct sonic_fw_flow *f, const struct pkt *p, __u64 now,
				       __u32 verdict, __u32 rule_id)
{
	__sync_fetch_and_add(&f->packets, 1);
	__sync_fetch_and_add(&f->bytes, p->len);
	if (dropping(verdict))
		__sync_fetch_and_add(&f->dropped, 1);
	f->last_seen = now;
	f->verdict = verdict;
	f->rule_id = rule_id;
}

static __always_inline void record_flow(struct xdp_md *ctx, const struct pkt *p, __u64 now,
					__u32 verdict, __u32 rule_id, struct sonic_fw_stats *st)
{
	struct sonic_fw_flow_key key = {
		.sport = p->sport,
		.dport = p->dport,
		.ifindex = ctx->ingress_ifindex,
		.proto = p->proto,
	};
	struct sonic_fw_flow *f;

	__builtin_memcpy(key.src, p->src, 16);
	__builtin_memcpy(key.dst, p->dst, 16);
	f = bpf_map_lookup_elem(&fw_flows, &key);
	if (!f) {
		struct sonic_fw_flow fresh = {
			.packets = 1,
			.bytes = p->len,
			.dropped = dropping(verdict),
			.first_seen = now,
			.last_seen = now,
			.verdict = verdict,
			.rule_id = rule_id,
		};

		if (bpf_map_update_elem(&fw_flows, &key, &fresh, BPF_NOEXIST) == 0)
			return;
		f = bpf_map_lookup_elem(&fw_flows, &key);
		if (!f) {
			count(st, SONIC_FW_FLOWS_FAILED, 1);
			return;
		}
	}
	flow_count(f, p, now, verdict, rule_id);
}

static __always_inline __u32 verdict_counter(__u32 verdict)
{
	switch (verdict) {
	case SONIC_FW_V_PASSED_RULE: return SONIC_FW_PASSED_RULE;
	case SONIC_FW_V_LIMIT_PASSED: return SONIC_FW_LIMIT_PASSED;
	case SONIC_FW_V_LIMIT_DROPPED: return SONIC_FW_LIMIT_DROPPED;
	case SONIC_FW_V_DROPPED_RULE: return SONIC_FW_DROPPED_RULE;
	default: return SONIC_FW_PASSED;
	}
}

SEC("xdp")
int fw_xdp(struct xdp_md *ctx)
{
	struct sonic_fw_stats *st;
	struct sonic_fw_block *b;
	struct pkt p = {};
	__u32 verdict, rule_id = 0, zero = 0;
	__u64 now;
	int rc;

	st = bpf_map_lookup_elem(&fw_stats, &zero);
	rc = parse(ctx, &p);
	if (rc <= 0) {
		count(st, rc ? SONIC_FW_PASSED_MALFORMED : SONIC_FW_PASSED_NOT_IP, 1);
		return XDP_PASS;
	}
	count(st, SONIC_FW_PACKETS, 1);
	count(st, SONIC_FW_BYTES, p.len);
	if (p.fragment)
		count(st, SONIC_FW_FRAGMENTS, 1);
	b = blocked(&p);
	if (b) {
		__sync_fetch_and_add(&b->packets, 1);
		count(st, SONIC_FW_DROPPED_BLOCKLIST, 1);
		return XDP_DROP;
	}
	now = bpf_ktime_get_coarse_ns();
	verdict = apply_rules(ctx, &p, &rule_id);
	record_flow(ctx, &p, now, verdict, rule_id, st);
	count(st, verdict_counter(verdict), 1);
	return dropping(verdict) ? XDP_DROP : XDP_PASS;
}
