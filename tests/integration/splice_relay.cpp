// A TCP relay for the splice tests and measurements: what the proxy does
// with a tunnel, without the proxy. It accepts a client, connects to the
// upstream, forwards the bytes it already read from the client (as a proxy
// forwards the rest of its buffer after a CONNECT), pairs the sockets with
// core/bpf/splice.hpp (or copies in userspace with --copy, or when splicing
// is unavailable) and follows the end-of-stream contract. It exits after
// --conns connections and prints a JSON report.
//
//   splice_relay --bpffs DIR --upstream 127.0.0.1:PORT [--listen PORT]
//                [--conns N] [--copy] [--early-wait MS] [--load]
//
// The first line on stdout is "listening PORT"; the last is the report.
#include "bpf/splice.hpp"
#include "out/error.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <optional>
#include <poll.h>
#include <csignal>
#include <string>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

namespace {

using sonic::bpf::SpliceDir;
using sonic::bpf::SpliceState;

struct Options {
	std::string bpffs = "/sys/fs/bpf/sonic";
	std::string upstream_host = "127.0.0.1";
	int upstream_port = 0;
	int listen_port = 0;
	long conns = 1;
	bool copy = false;
	bool load = false;
	int early_wait_ms = 0;
};

[[noreturn]] void die(const std::string &what)
{
	std::fprintf(stderr, "splice_relay: %s\n", what.c_str());
	std::exit(2);
}

void check(bool ok, const char *what)
{
	if (!ok)
		die(std::string(what) + ": " + std::strerror(errno));
}

Options parse(int argc, char **argv)
{
	Options o;
	for (int i = 1; i < argc; ++i) {
		std::string a = argv[i];
		auto value = [&]() -> std::string {
			if (i + 1 >= argc)
				die(a + " needs a value");
			return argv[++i];
		};
		if (a == "--bpffs")
			o.bpffs = value();
		else if (a == "--upstream") {
			std::string v = value();
			size_t colon = v.rfind(':');
			if (colon == std::string::npos)
				die("--upstream wants HOST:PORT");
			o.upstream_host = v.substr(0, colon);
			o.upstream_port = std::atoi(v.c_str() + colon + 1);
		} else if (a == "--listen")
			o.listen_port = std::atoi(value().c_str());
		else if (a == "--conns")
			o.conns = std::atol(value().c_str());
		else if (a == "--early-wait")
			o.early_wait_ms = std::atoi(value().c_str());
		else if (a == "--copy")
			o.copy = true;
		else if (a == "--load")
			o.load = true;
		else
			die("unknown option " + a);
	}
	if (!o.upstream_port)
		die("--upstream is required");
	return o;
}

void set_nonblocking(int fd)
{
	check(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0, "fcntl");
}

void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		check(w > 0, "write early bytes");
		p += w;
		n -= static_cast<size_t>(w);
	}
}

// One direction copied in userspace.
struct Copier {
	std::vector<char> buf = std::vector<char>(1 << 17);
	size_t off = 0, len = 0;
	bool cleared = true; // buf[off, len) may be written (splice said so)
	bool eof = false;
	bool active = false;
	uint64_t bytes = 0;
};

struct Stats {
	long finished = 0;
	long spliced = 0;
	long copied_dirs = 0;
	long failed = 0;
	long drain_waits = 0; // end of stream seen while the kernel still held bytes
	uint64_t early_bytes = 0;
	uint64_t copied_bytes = 0;
	uint64_t discarded_bytes = 0;
};

struct Tunnel {
	int ep = -1;
	int fd[2] = {-1, -1}; // client, upstream
	bool want_out[2] = {false, false}; // EPOLLOUT registered
	std::optional<sonic::bpf::SpliceTunnel> splice;
	Copier copier[2];
	bool ended[2] = {false, false};
	bool failed = false;
	bool waiting = false; // a direction is Draining or CopyPending

	// Events a socket is watched for. A spliced socket is not watched for
	// EPOLLOUT: the kernel's own sends would wake the relay for nothing.
	static uint32_t events(bool out) { return EPOLLIN | EPOLLRDHUP | EPOLLET | (out ? uint32_t{EPOLLOUT} : 0u); }

	void watch_writable(int side)
	{
		if (want_out[side])
			return;
		want_out[side] = true;
		struct epoll_event e{};
		e.events = events(true);
		e.data.ptr = this;
		check(epoll_ctl(ep, EPOLL_CTL_MOD, fd[side], &e) == 0, "epoll_ctl");
	}

	// Copies what can be copied now; returns false on a socket error.
	bool pump(int d, Stats &stats)
	{
		Copier &c = copier[d];
		const int src = fd[d], dst = fd[1 - d];
		for (;;) {
			if (c.off < c.len && !c.cleared) {
				if (splice->copy_read(static_cast<SpliceDir>(d), c.len) != SpliceState::Copy) {
					waiting = true;
					return true;
				}
				c.cleared = true;
			}
			if (c.off < c.len) {
				ssize_t w = write(dst, c.buf.data() + c.off, c.len - c.off);
				if (w < 0 && errno == EAGAIN)
					watch_writable(1 - d);
				if (w < 0)
					return errno == EAGAIN || errno == EINTR;
				c.off += static_cast<size_t>(w);
				continue;
			}
			if (c.eof) {
				if (!splice) {
					shutdown(dst, SHUT_WR);
					ended[d] = true;
				} else if (splice->copy_eof(static_cast<SpliceDir>(d), c.bytes) == SpliceState::Ended) {
					ended[d] = true;
				} else {
					c.eof = false; // more is on its way: read again soon
					waiting = true;
				}
				return true;
			}
			ssize_t r = read(src, c.buf.data(), c.buf.size());
			if (r < 0)
				return errno == EAGAIN || errno == EINTR;
			if (r == 0) {
				c.eof = true;
				continue;
			}
			c.off = 0;
			c.len = static_cast<size_t>(r);
			c.cleared = !splice;
			c.bytes += c.len;
			stats.copied_bytes += c.len;
		}
	}

	void step(Stats &stats)
	{
		waiting = false; // set again below while a direction must be retried
		for (int d = 0; d < 2 && !failed; ++d) {
			if (ended[d])
				continue;
			if (splice && !copier[d].active) {
				SpliceState s = splice->advance(static_cast<SpliceDir>(d));
				switch (s) {
				case SpliceState::Spliced:
					continue;
				case SpliceState::Draining:
					++stats.drain_waits;
					waiting = true;
					continue;
				case SpliceState::CopyPending:
					waiting = true;
					continue;
				case SpliceState::Ended:
					ended[d] = true;
					continue;
				case SpliceState::Failed:
					failed = true;
					continue;
				case SpliceState::Copy:
					copier[d].active = true;
					++stats.copied_dirs;
					break;
				}
			}
			if (!pump(d, stats))
				failed = true;
		}
	}

	bool done() const { return failed || (ended[0] && ended[1]); }
};

int listen_on(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	check(fd >= 0, "socket");
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a{};
	a.sin_family = AF_INET;
	a.sin_port = htons(static_cast<uint16_t>(port));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	check(bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0, "bind");
	check(listen(fd, 1024) == 0, "listen");
	return fd;
}

int connect_upstream(const Options &o)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	check(fd >= 0, "socket");
	struct sockaddr_in a{};
	a.sin_family = AF_INET;
	a.sin_port = htons(static_cast<uint16_t>(o.upstream_port));
	check(inet_pton(AF_INET, o.upstream_host.c_str(), &a.sin_addr) == 1, "upstream address");
	check(connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof(a)) == 0, "connect upstream");
	return fd;
}

// What a proxy has read before it knows the route: whatever the client sent
// within EARLY_WAIT_MS (up to one buffer), forwarded before pairing.
uint64_t forward_early_bytes(int client, int upstream, int wait_ms)
{
	if (wait_ms <= 0)
		return 0;
	struct pollfd p = {client, POLLIN, 0};
	if (poll(&p, 1, wait_ms) <= 0)
		return 0;
	std::vector<char> buf(1 << 16);
	ssize_t r = recv(client, buf.data(), buf.size(), MSG_DONTWAIT);
	if (r <= 0)
		return 0;
	write_all(upstream, buf.data(), static_cast<size_t>(r));
	return static_cast<uint64_t>(r);
}

std::string json_string(const std::string &s)
{
	std::string out = "\"";
	for (char ch : s) {
		if (ch == '"' || ch == '\\')
			out += '\\';
		if (static_cast<unsigned char>(ch) >= 0x20)
			out += ch;
	}
	return out + "\"";
}

} // namespace

int main(int argc, char **argv)
{
	Options o = parse(argc, argv);
	std::signal(SIGPIPE, SIG_IGN); // a peer gone mid-write is an error, not an exit
	std::string unavailable;
	std::shared_ptr<const sonic::bpf::Splice> splice;
	if (!o.copy) {
		sonic::bpf::SpliceOpen opened = sonic::bpf::open_splice(sonic::bpf::Bpffs(o.bpffs), o.load);
		splice = opened.splice;
		unavailable = opened.unavailable;
	}

	int lfd = listen_on(o.listen_port);
	struct sockaddr_in bound{};
	socklen_t blen = sizeof(bound);
	getsockname(lfd, reinterpret_cast<sockaddr *>(&bound), &blen);
	std::printf("listening %d\n", ntohs(bound.sin_port));
	std::fflush(stdout);
	set_nonblocking(lfd);

	int ep = epoll_create1(EPOLL_CLOEXEC);
	check(ep >= 0, "epoll_create1");
	struct epoll_event ev{};
	ev.events = EPOLLIN;
	ev.data.ptr = nullptr;
	check(epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) == 0, "epoll_ctl listener");

	Stats stats;
	std::map<Tunnel *, std::unique_ptr<Tunnel>> tunnels;
	long accepted = 0;
	auto finish = [&](Tunnel *t) {
		if (t->splice)
			stats.discarded_bytes += t->splice->unpair().discarded_bytes;
		stats.failed += t->failed ? 1 : 0;
		close(t->fd[0]);
		close(t->fd[1]);
		++stats.finished;
		tunnels.erase(t);
	};

	while (stats.finished < o.conns) {
		bool waiting = false;
		for (auto &[p, t] : tunnels)
			waiting = waiting || t->waiting;
		struct epoll_event events[64];
		int n = epoll_wait(ep, events, 64, waiting ? 1 : -1);
		if (n < 0 && errno == EINTR)
			continue;
		check(n >= 0, "epoll_wait");
		std::vector<Tunnel *> touched;
		for (int i = 0; i < n; ++i) {
			if (events[i].data.ptr) {
				touched.push_back(static_cast<Tunnel *>(events[i].data.ptr));
				continue;
			}
			for (;;) {
				if (accepted >= o.conns)
					break;
				int c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
				if (c < 0)
					break;
				++accepted;
				auto t = std::make_unique<Tunnel>();
				t->fd[0] = c;
				t->fd[1] = connect_upstream(o);
				stats.early_bytes += forward_early_bytes(c, t->fd[1], o.early_wait_ms);
				if (splice) {
					try {
						t->splice.emplace(splice->pair(t->fd[0], t->fd[1]));
						++stats.spliced;
					} catch (const sonic::Error &e) {
						std::fprintf(stderr, "splice_relay: copying: %s\n", e.what());
					}
				}
				t->ep = ep;
				for (int side = 0; side < 2; ++side) {
					set_nonblocking(t->fd[side]);
					t->want_out[side] = !t->splice;
					struct epoll_event e{};
					e.events = Tunnel::events(t->want_out[side]);
					e.data.ptr = t.get();
					check(epoll_ctl(ep, EPOLL_CTL_ADD, t->fd[side], &e) == 0, "epoll_ctl");
				}
				touched.push_back(t.get());
				tunnels.emplace(t.get(), std::move(t));
			}
		}
		if (waiting)
			for (auto &[p, t] : tunnels)
				if (t->waiting)
					touched.push_back(p);
		for (Tunnel *t : touched) {
			if (!tunnels.count(t))
				continue;
			t->step(stats);
			if (t->done())
				finish(t);
		}
	}
	std::printf("{\"conns\": %ld, \"spliced\": %ld, \"copied_directions\": %ld, \"failed\": %ld, "
		    "\"drain_waits\": %ld, \"early_bytes\": %llu, \"copied_bytes\": %llu, \"discarded_bytes\": %llu, \"unavailable\": %s}\n",
		    stats.finished, stats.spliced, stats.copied_dirs, stats.failed, stats.drain_waits,
		    static_cast<unsigned long long>(stats.early_bytes), static_cast<unsigned long long>(stats.copied_bytes),
		    static_cast<unsigned long long>(stats.discarded_bytes),
		    unavailable.empty() ? "null" : json_string(unavailable).c_str());
	return 0;
}
