#include "bpf/splice.hpp"

#include "splice.skel.h"
#include "bpf/family.hpp"
#include "bpf/pins.hpp"
#include "bpf/libbpf.hpp"
#include "out/error.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cerrno>
#include <linux/sockios.h>
#include <linux/tcp.h> // struct tcp_info with the byte counters
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <vector>

namespace sonic::bpf {

namespace {

constexpr std::string_view kFamily = "splice";
constexpr std::string_view kVerdictLink = "splice_verdict";
constexpr uint8_t kTcpEstablished = 1; // include/net/tcp_states.h

const char *const kCounterNames[SONIC_SPLICE_NR_COUNTERS] = {
	"streams", "redirects", "redirect_bytes", "client_bytes", "upstream_bytes", "overflows",
	"resumed", "passed",    "passed_bytes",   "no_state",     "no_peer",        "empty",
};

uint64_t cookie_of(int fd)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0)
		throw errno_error("read socket cookie", errno, "fd " + std::to_string(fd));
	return cookie;
}

struct tcp_info tcp_info_of(int fd)
{
	struct tcp_info info{};
	socklen_t len = sizeof(info);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0)
		throw errno_error("read TCP_INFO", errno, "fd " + std::to_string(fd));
	return info;
}

// Bytes ever put in the socket's send queue (write_seq less a constant):
// acknowledged plus still queued, read until no ACK moved in between.
uint64_t queued_total(int fd)
{
	for (;;) {
		uint64_t acked = tcp_info_of(fd).tcpi_bytes_acked;
		int outq = 0;
		if (ioctl(fd, SIOCOUTQ, &outq) != 0)
			throw errno_error("read send queue", errno, "fd " + std::to_string(fd));
		if (tcp_info_of(fd).tcpi_bytes_acked == acked)
			return acked + static_cast<uint64_t>(outq);
	}
}

// Received bytes not yet taken by the program (or by a reader).
int unread(int fd)
{
	int inq = 0;
	if (ioctl(fd, SIOCINQ, &inq) != 0)
		throw errno_error("read receive queue", errno, "fd " + std::to_string(fd));
	return inq;
}

short poll_now(int fd, short events)
{
	struct pollfd p = {fd, events, 0};
	if (poll(&p, 1, 0) < 0)
		throw errno_error("poll socket", errno, "fd " + std::to_string(fd));
	return p.revents;
}

bool failed(int fd)
{
	if (!(poll_now(fd, 0) & (POLLERR | POLLNVAL)))
		return false;
	return true;
}

void shut_write(int fd)
{
	if (shutdown(fd, SHUT_WR) != 0 && errno != ENOTCONN)
		throw errno_error("shut down socket for writing", errno, "fd " + std::to_string(fd));
}

// Runs the verdict on bytes that reached the receive queue before the
// socket entered the map: tcp_set_rcvlowat() signals data ready.
void kick(int fd)
{
	int one = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one)) != 0)
		throw errno_error("start forwarding queued bytes", errno, "fd " + std::to_string(fd));
}

// The pinned verdict program and the map it serves.
struct SpliceObjects {
	Pins pins;
	Fd verdict, socks;

	explicit SpliceObjects(const Bpffs &fs)
		: pins(fs, kFamily), verdict(pins.prog(SONIC_PROG(splice_bpf, splice_verdict))),
		  socks(pins.map(SONIC_MAP(splice_bpf, splice_socks)))
	{
	}

	bool attached() const
	{
		return pins.sockmap_attached(verdict.get(), socks.get(), BPF_SK_SKB_STREAM_VERDICT, kVerdictLink);
	}
};

} // namespace

std::string_view splice_state_name(SpliceState state)
{
	switch (state) {
	case SpliceState::Spliced: return "spliced";
	case SpliceState::Draining: return "draining";
	case SpliceState::CopyPending: return "copy_pending";
	case SpliceState::Copy: return "copy";
	case SpliceState::Ended: return "ended";
	case SpliceState::Failed: return "failed";
	}
	return "unknown";
}

std::string_view splice_counter_name(size_t index)
{
	return index < SONIC_SPLICE_NR_COUNTERS ? kCounterNames[index] : "unknown";
}

bool splice_attach(const Bpffs &fs)
{
	bool changed = require_family(fs, builtin_family(kFamily));
	SpliceObjects o(fs);
	return o.pins.attach_sockmap(o.verdict.get(), o.socks.get(), BPF_SK_SKB_STREAM_VERDICT, kVerdictLink) ||
	       changed;
}

SpliceOpen open_splice(const Bpffs &fs, bool load)
{
	SpliceOpen r;
	try {
		const bool usable = family_maps_usable(fs, builtin_family(kFamily));
		if (!usable || !SpliceObjects(fs).attached()) {
			if (!load) {
				r.unavailable = std::string(usable ? "splice_verdict is not attached" : "the splice BPF family is not loaded") +
						" under " + fs.root() + " (run `sonic prog load splice`)";
				return r;
			}
			fs.ensure();
			Fd lock = fs.lock();
			splice_attach(fs);
		}
		const Pins pins(fs, kFamily);
		r.splice = std::make_shared<const Splice>(pins.map(SONIC_MAP(splice_bpf, splice_socks)),
							  pins.map(SONIC_MAP(splice_bpf, splice_state)));
	} catch (const Error &e) {
		r.unavailable = "the splice family is unavailable: " + std::string(e.what());
	}
	return r;
}

SpliceTunnel Splice::pair(int client_fd, int upstream_fd) const
{
	return SpliceTunnel(shared_from_this(), client_fd, upstream_fd);
}

SpliceTunnel::SpliceTunnel(std::shared_ptr<const Splice> splice, int client_fd, int upstream_fd)
	: splice_(std::move(splice)), fd_{client_fd, upstream_fd}
{
	const std::string op = "pair sockets";
	const std::string object = "fd " + std::to_string(client_fd) + " <-> fd " + std::to_string(upstream_fd);
	for (int fd : fd_)
		if (tcp_info_of(fd).tcpi_state != kTcpEstablished)
			throw kernel_error(op, "fd " + std::to_string(fd) + " is not an established TCP connection", object);
	for (int side = 0; side < 2; ++side) {
		cookie_[side] = cookie_of(fd_[side]);
		base_[side] = queued_total(fd_[side]);
	}
	for (int side = 0; side < 2; ++side) {
		struct sonic_splice_sock st{};
		st.peer = cookie_[1 - side];
		st.flags = side == 0 ? SONIC_SPLICE_CLIENT : 0;
		if (bpf_map_update_elem(splice_->state_fd(), &cookie_[side], &st, BPF_NOEXIST) != 0) {
			int err = errno;
			if (side == 1)
				bpf_map_delete_elem(splice_->state_fd(), &cookie_[0]);
			throw errno_error(op, err == EEXIST ? EBUSY : err, object);
		}
	}
	// The client goes in first: the upstream is usually the quieter end
	// (it waits for the client's next bytes), and bytes that arrive at the
	// first socket before its peer is in the map make that direction copy.
	for (int side = 0; side < 2; ++side) {
		uint64_t value = static_cast<uint64_t>(fd_[side]);
		if (bpf_map_update_elem(splice_->socks_fd(), &cookie_[side], &value, BPF_NOEXIST) != 0) {
			int err = errno;
			if (side == 1)
				bpf_map_delete_elem(splice_->socks_fd(), &cookie_[0]);
			bpf_map_delete_elem(splice_->state_fd(), &cookie_[0]);
			bpf_map_delete_elem(splice_->state_fd(), &cookie_[1]);
			throw errno_error(op, err, object);
		}
	}
	paired_ = true;
	for (int fd : fd_)
		kick(fd);
}

SpliceTunnel::SpliceTunnel(SpliceTunnel &&o) noexcept
	: splice_(std::move(o.splice_)), fd_(o.fd_), cookie_(o.cookie_), base_(o.base_), state_(o.state_),
	  copied_(o.copied_), drained_(o.drained_), paired_(std::exchange(o.paired_, false))
{
}

SpliceTunnel::~SpliceTunnel()
{
	try {
		unpair();
	} catch (const Error &) {
		// The sockets leave the map when the caller closes them anyway.
	}
}

uint64_t SpliceTunnel::redirected(int side, uint32_t *flags) const
{
	struct sonic_splice_sock st{};
	if (bpf_map_lookup_elem(splice_->state_fd(), &cookie_[side], &st) != 0)
		throw errno_error("read splice state", errno, "fd " + std::to_string(fd_[side]));
	if (flags)
		*flags = st.flags;
	return st.redirected;
}

uint64_t SpliceTunnel::delivered(int side) const
{
	const int dest = 1 - side;
	return queued_total(fd_[dest]) - base_[dest];
}

uint64_t SpliceTunnel::redirected_bytes(SpliceDir dir) const
{
	const int side = static_cast<int>(dir);
	struct sonic_splice_sock st{};
	if (!paired_ || bpf_map_lookup_elem(splice_->state_fd(), &cookie_[side], &st) != 0)
		return 0;
	return st.redirected;
}

SpliceState SpliceTunnel::advance(SpliceDir dir)
{
	const int src = static_cast<int>(dir);
	const int dst = 1 - src;
	SpliceState &state = state_[src];
	if (state == SpliceState::Ended || state == SpliceState::Failed || state == SpliceState::Copy)
		return state;
	if (failed(fd_[src]) || failed(fd_[dst]))
		return state = SpliceState::Failed;

	uint32_t flags = 0;
	uint64_t sent = redirected(src, &flags);
	if (flags & SONIC_SPLICE_COPY)
		return state = SpliceState::Copy;
	if (!(poll_now(fd_[src], POLLRDHUP) & (POLLRDHUP | POLLHUP)))
		return state = SpliceState::Spliced;
	// The source ended. Its last bytes may still be on the receive queue
	// (the FIN is signalled before the data that came with it is handed to
	// the program) or on the destination's psock backlog.
	if (unread(fd_[src]) > 0)
		return state = SpliceState::Draining;
	sent = redirected(src, &flags); // after the queue is empty: final
	if (flags & SONIC_SPLICE_COPY)
		return state = SpliceState::Copy;
	if (delivered(src) < sent)
		return state = SpliceState::Draining;
	shut_write(fd_[dst]);
	return state = SpliceState::Ended;
}

SpliceState SpliceTunnel::copy_read(SpliceDir dir, uint64_t bytes)
{
	const int src = static_cast<int>(dir);
	if (state_[src] != SpliceState::Copy)
		return state_[src];
	// Everything before these bytes: what the kernel redirected (its
	// count does not move while they are passed to us) and what the
	// caller wrote of earlier reads.
	// One map read per batch; the send queue is read only when the kernel
	// redirected more since the last time it was known to be sent.
	const uint64_t before = redirected(src, nullptr);
	if (before != drained_[src]) {
		if (delivered(src) < before + copied_[src])
			return SpliceState::CopyPending;
		drained_[src] = before;
	}
	copied_[src] += bytes;
	return SpliceState::Copy;
}

SpliceState SpliceTunnel::copy_eof(SpliceDir dir, uint64_t bytes_read)
{
	const int src = static_cast<int>(dir);
	if (state_[src] != SpliceState::Copy)
		return state_[src];
	// tcp_bpf reports end of stream as soon as its own queue is empty and
	// the FIN is in, while buffers passed to it may still wait on the
	// psock backlog: only the byte counts say they have all been read, and
	// that what the kernel took back after the copy has been sent.
	struct sonic_splice_sock st{};
	if (unread(fd_[src]) > 0 || bpf_map_lookup_elem(splice_->state_fd(), &cookie_[src], &st) != 0 ||
	    bytes_read < st.passed || delivered(src) < st.redirected + st.passed)
		return SpliceState::Copy;
	shut_write(fd_[1 - src]);
	return state_[src] = SpliceState::Ended;
}

SpliceTunnel::Unpaired SpliceTunnel::unpair()
{
	Unpaired r;
	if (!paired_)
		return r;
	paired_ = false;
	for (int side = 0; side < 2; ++side) {
		struct sonic_splice_sock st{};
		if (state_[side] == SpliceState::Ended ||
		    bpf_map_lookup_elem(splice_->state_fd(), &cookie_[side], &st) != 0)
			continue;
		uint64_t done = 0;
		try {
			done = delivered(side);
		} catch (const Error &) {
			done = 0;
		}
		if (st.redirected > done)
			r.discarded_bytes += st.redirected - done;
	}
	for (int side = 0; side < 2; ++side) {
		bpf_map_delete_elem(splice_->socks_fd(), &cookie_[side]);
		bpf_map_delete_elem(splice_->state_fd(), &cookie_[side]);
	}
	return r;
}

SpliceCounters splice_counters(const Bpffs &fs)
{
	if (!family_maps_usable(fs, builtin_family(kFamily)))
		throw env_error("read splice counters", "splice is not loaded", fs.root())
			.with_hint("run `sonic prog load splice` first");
	const std::string op = "read splice counters";
	const Pins pins(fs, kFamily);
	Fd socks = pins.map(SONIC_MAP(splice_bpf, splice_socks));
	Fd state = pins.map(SONIC_MAP(splice_bpf, splice_state));
	const auto stats = sum_per_cpu<struct sonic_splice_stats>(pins.map(SONIC_MAP(splice_bpf, splice_stats)).get(), op);
	SpliceCounters c;
	std::copy(std::begin(stats.counter), std::end(stats.counter), c.counter.begin());
	c.sockets = count_keys(socks.get());
	uint64_t cur = 0, next = 0;
	void *prev = nullptr;
	while (bpf_map_get_next_key(state.get(), prev, &next) == 0) {
		struct sonic_splice_sock st{};
		uint64_t in_map = 0;
		// State of a proxy that died without unpairing stays behind: only
		// sockets still in the map count.
		if (bpf_map_lookup_elem(state.get(), &next, &st) == 0 &&
		    bpf_map_lookup_elem(socks.get(), &next, &in_map) == 0) {
			c.tunnels += (st.flags & SONIC_SPLICE_CLIENT) ? 1 : 0;
			c.copying += (st.flags & SONIC_SPLICE_COPY) ? 1 : 0;
		}
		cur = next;
		prev = &cur;
	}
	return c;
}

} // namespace sonic::bpf
