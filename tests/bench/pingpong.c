// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Minimal blocking ping-pong between two processes, over a pipe pair or a
 * loopback TCP connection, with the same timing method for both. The pipe is
 * the floor for any blocking IPC on a machine: a TCP path cannot beat it,
 * however it is accelerated, so it tells how much of a round trip is the
 * network stack and how much is wakeups and context switches.
 *
 *   pingpong pipe|tcp MESSAGES SIZE SERVER_CPU CLIENT_CPU [PORT]
 *   (CPU -1 = not pinned)
 *
 * Prints "p50_us p99_us" of the half round trip, like sockperf.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		perror("sched_setaffinity");
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int full(ssize_t (*io)(int, void *, size_t), int fd, char *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = io(fd, buf + done, n - done);

		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

static ssize_t rd(int fd, void *b, size_t n) { return read(fd, b, n); }
static ssize_t wr(int fd, void *b, size_t n) { return write(fd, b, n); }

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: %s pipe|tcp MESSAGES SIZE SERVER_CPU CLIENT_CPU [PORT]\n", argv[0]);
		return 1;
	}
	int tcp = strcmp(argv[1], "tcp") == 0;
	int n = atoi(argv[2]);
	size_t size = (size_t)atoi(argv[3]);
	int scpu = atoi(argv[4]), ccpu = atoi(argv[5]);
	int port = argc > 6 ? atoi(argv[6]) : 0;
	char *buf = calloc(1, size);
	double *lat = calloc((size_t)n, sizeof(double));
	int c2s[2], s2c[2], cfd = -1, lfd = -1, one = 1;
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(addr);

	if (!buf || !lat)
		return 1;
	if (tcp) {
		lfd = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		addr.sin_port = htons((unsigned short)port);
		if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 1) ||
		    getsockname(lfd, (struct sockaddr *)&addr, &alen)) {
			perror("listen");
			return 1;
		}
	} else if (pipe(c2s) || pipe(s2c)) {
		perror("pipe");
		return 1;
	}

	pid_t child = fork();
	if (child == 0) {
		int in, out;

		pin(scpu);
		if (tcp) {
			in = out = accept(lfd, NULL, NULL);
			setsockopt(in, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		} else {
			in = c2s[0];
			out = s2c[1];
		}
		for (int i = 0; i < n; i++)
			if (full(rd, in, buf, size) || full(wr, out, buf, size))
				_exit(1);
		_exit(0);
	}

	int in, out;
	pin(ccpu);
	if (tcp) {
		cfd = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(cfd, (struct sockaddr *)&addr, sizeof(addr))) {
			perror("connect");
			return 1;
		}
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		in = out = cfd;
	} else {
		in = s2c[0];
		out = c2s[1];
	}
	for (int i = 0; i < n; i++) {
		double t = now_ns();

		if (full(wr, out, buf, size) || full(rd, in, buf, size))
			return 1;
		lat[i] = (now_ns() - t) / 2000.0;
	}
	int status = 0;
	waitpid(child, &status, 0);
	qsort(lat, (size_t)n, sizeof(double), cmp);
	printf("%.3f %.3f\n", lat[n / 2], lat[(size_t)n * 99 / 100]);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
