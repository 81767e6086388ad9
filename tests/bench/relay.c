// A fast transparent relay for tests/bench/steer.sh: the same listener is fed
// by sonic's BPF steering and by iptables TPROXY, so the comparison measures
// the steering, not the proxy. Thread per connection, splice(2) both ways.
//
// relay ADDR PORT   (ADDR: an IPv4 address; listens with IP_TRANSPARENT)
//
// The original destination is the accepted socket's local address (tc
// sk_assign and TPROXY both keep it); the upstream socket carries sonic's
// bypass mark.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BYPASS_MARK 0x5301

struct half {
	int from, to;
};

static void *pump(void *arg)
{
	struct half *h = arg;
	int p[2];

	if (pipe2(p, O_CLOEXEC) == 0) {
		for (;;) {
			ssize_t n = splice(h->from, NULL, p[1], NULL, 1 << 16, SPLICE_F_MOVE);
			if (n <= 0)
				break;
			while (n > 0) {
				ssize_t m = splice(p[0], NULL, h->to, NULL, (size_t)n, SPLICE_F_MOVE);
				if (m <= 0)
					goto out;
				n -= m;
			}
		}
out:
		close(p[0]);
		close(p[1]);
	}
	shutdown(h->to, SHUT_WR);
	return NULL;
}

static void *serve(void *arg)
{
	int c = (int)(long)arg, u, one = 1, mark = BYPASS_MARK;
	struct sockaddr_in orig;
	socklen_t len = sizeof(orig);
	pthread_t t;

	if (getsockname(c, (struct sockaddr *)&orig, &len) != 0)
		goto done;
	u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(u, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
	setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(u, (struct sockaddr *)&orig, len) != 0) {
		close(u);
		goto done;
	}
	struct half down = {u, c}, up = {c, u};
	if (pthread_create(&t, NULL, pump, &down) == 0) {
		pump(&up);
		pthread_join(t, NULL);
	}
	close(u);
done:
	close(c);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int l, one = 1;

	if (argc != 3 || inet_pton(AF_INET, argv[1], &a.sin_addr) != 1) {
		fprintf(stderr, "usage: relay ADDR PORT\n");
		return 1;
	}
	a.sin_port = htons((unsigned short)atoi(argv[2]));
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(l, SOL_IP, IP_TRANSPARENT, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 1024) != 0) {
		perror("relay: listen");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		pthread_t t;
		pthread_attr_t attr;

		if (c < 0)
			continue;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, serve, (void *)(long)c) != 0)
			close(c);
		pthread_attr_destroy(&attr);
	}
}
