// The flood sender of tests/bench/fw.sh: minimum-size frames (UDP, or TCP
// SYN) from one source, written to an interface through an AF_PACKET socket
// with sendmmsg, bypassing the qdisc.
//
// trafgen (netsniff-ng) stops at its first EAGAIN unless it may raise the
// host's socket memory limits (net.core.wmem_*), which a benchmark must not
// touch; this sender takes a large send buffer for its own socket
// (SO_SNDBUFFORCE) and blocks instead.
//
// usage: flood IFACE DST_MAC SRC_MAC SRC_IP DST_IP udp|syn SECONDS [PPS]
//   PPS 0 or absent: as fast as it can. Prints "sent N seconds S".
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FRAME 60
#define BATCH 64

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void parse_mac(const char *s, uint8_t out[6])
{
	unsigned v[6];
	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6) {
		fprintf(stderr, "flood: bad MAC %s\n", s);
		exit(1);
	}
	for (int i = 0; i < 6; i++)
		out[i] = (uint8_t)v[i];
}

static uint16_t checksum(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)(p[len - 1] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

// One frame: Ethernet, IPv4, then UDP with a small payload or a TCP SYN.
static void build(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], in_addr_t saddr, in_addr_t daddr, int syn)
{
	memset(f, 0, FRAME);
	struct ethhdr *eth = (struct ethhdr *)f;
	memcpy(eth->h_dest, dst, 6);
	memcpy(eth->h_source, src, 6);
	eth->h_proto = htons(ETH_P_IP);
	struct iphdr *ip = (struct iphdr *)(eth + 1);
	ip->version = 4;
	ip->ihl = 5;
	ip->ttl = 64;
	ip->protocol = syn ? IPPROTO_TCP : IPPROTO_UDP;
	ip->saddr = saddr;
	ip->daddr = daddr;
	ip->tot_len = htons(FRAME - sizeof(*eth));
	ip->check = checksum(ip, sizeof(*ip), 0);
	uint8_t *l4 = (uint8_t *)(ip + 1);
	size_t l4len = FRAME - sizeof(*eth) - sizeof(*ip);
	// The pseudo-header's sum: addresses, protocol, length.
	uint32_t pseudo = (ntohl(saddr) >> 16) + (ntohl(saddr) & 0xffff) + (ntohl(daddr) >> 16) +
			  (ntohl(daddr) & 0xffff) + ip->protocol + (uint32_t)l4len;
	if (syn) {
		struct tcphdr *tcp = (struct tcphdr *)l4;
		tcp->source = htons(40000);
		tcp->dest = htons(80);
		tcp->seq = htonl(1);
		tcp->doff = 5;
		tcp->syn = 1;
		tcp->window = htons(65535);
		tcp->check = checksum(l4, l4len, pseudo);
	} else {
		struct udphdr *udp = (struct udphdr *)l4;
		udp->source = htons(40000);
		udp->dest = htons(9);
		udp->len = htons((uint16_t)l4len);
		udp->check = checksum(l4, l4len, pseudo);
	}
}

int main(int argc, char **argv)
{
	if (argc < 8) {
		fprintf(stderr, "usage: flood IFACE DST_MAC SRC_MAC SRC_IP DST_IP udp|syn SECONDS [PPS]\n");
		return 1;
	}
	uint8_t dst[6], src[6], frame[FRAME];
	parse_mac(argv[2], dst);
	parse_mac(argv[3], src);
	build(frame, dst, src, inet_addr(argv[4]), inet_addr(argv[5]), strcmp(argv[6], "syn") == 0);
	const double seconds = atof(argv[7]);
	const double pps = argc > 8 ? atof(argv[8]) : 0;

	int fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0) {
		perror("flood: socket");
		return 2;
	}
	int sndbuf = 64 << 20, one = 1;
	setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf));
	setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
	struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(argv[1]), .sll_halen = 6};
	memcpy(ll.sll_addr, dst, 6);
	if (ll.sll_ifindex == 0 || bind(fd, (struct sockaddr *)&ll, sizeof(ll)) != 0) {
		perror("flood: bind");
		return 2;
	}

	struct iovec iov = {.iov_base = frame, .iov_len = FRAME};
	struct mmsghdr msgs[BATCH];
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	const double start = now(), end = start + seconds;
	unsigned long long sent = 0;
	for (double t = start; t < end; t = now()) {
		unsigned batch = BATCH;
		if (pps > 0) {
			// Paced: as many as are due by now, in batches of at most BATCH.
			double due = (t - start) * pps - (double)sent;
			if (due < 1) {
				usleep(100);
				continue;
			}
			batch = due < BATCH ? (unsigned)due : BATCH;
		}
		int n = sendmmsg(fd, msgs, batch, 0);
		if (n > 0)
			sent += (unsigned long long)n;
		else if (n < 0 && errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
			perror("flood: sendmmsg");
			return 2;
		}
	}
	printf("sent %llu seconds %.3f\n", sent, now() - start);
	return 0;
}
