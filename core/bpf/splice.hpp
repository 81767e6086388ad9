// Kernel TCP tunnels: the userspace half of bpf/splice.bpf.c, called by the
// proxy from any worker thread once it has decided a connection's route.
//
// Life of a tunnel, and what the caller must do at each step:
//
//  1. open_splice() once per process. When it reports `unavailable` (not
//     root, family not loaded and not loadable, old kernel) the proxy copies
//     in userspace; the reason is meant for its log.
//
//  2. Before pair(client, upstream): every byte the proxy has read from one
//     socket and means to forward (the rest of a CONNECT request's buffer,
//     early TLS bytes, an upstream banner) must already be written to the
//     other socket COMPLETELY (in its send queue: a blocking write, or
//     non-blocking writes until done). Bytes the proxy has not read stay in
//     the kernel: pair() makes the program forward them, in order, after
//     the bytes written before. From pair() on the proxy must not read from
//     or write to either socket except as advance() says (Copy).
//
//  3. After pair(): for each direction, wait until its source socket is
//     readable or hung up (EPOLLIN | EPOLLRDHUP; Asio: async_wait(wait_read)),
//     then call advance(direction) and do what the state says:
//       Spliced      the kernel forwards; wait again.
//       Draining     the source ended; the kernel still holds some of its
//                    bytes for the destination: call again after kRetry.
//       Copy         the kernel passes this direction's bytes to the source
//                    socket for the proxy to copy (the peer fell behind: see
//                    flow control; or the pairing raced with the first
//                    bytes). From now on the proxy reads the source and
//                    writes the destination, keeping TCP's backpressure:
//                    - after each read of N > 0 bytes and before writing
//                      them, call copy_read(dir, N): Copy means write them
//                      all now; CopyPending means bytes redirected earlier
//                      are still on their way, so hold them and ask again
//                      after kSpliceRetry;
//                    - a read of 0 is not yet the end: buffers may still be
//                      on their way to the source's queue. Call copy_eof()
//                      with the bytes read so far; it says Ended (and shuts
//                      the destination down) or Copy: read again after
//                      kSpliceRetry;
//                    - EAGAIN: wait for readable. Once the proxy has written
//                      everything and the peer has sent everything, the
//                      kernel takes the direction back by itself; reads then
//                      find nothing until the end of stream.
//       Ended        every byte reached the destination's send queue and
//                    advance() shut the destination down for writing (the
//                    FIN goes out after the data, never before).
//       Failed       a socket was reset or errored: close both.
//     A half-close in one direction does not end the other: the client may
//     shut down writing and still receive the rest of the response.
//
//  4. When both directions are Ended (or on Failed), unpair() and close the
//     sockets. unpair() (also run by the destructor) takes the sockets out of
//     the map; bytes the kernel still held for a destination at that point
//     are discarded and counted in its result, which is 0 after two Ended.
//
// Known limits (see the issue note for the measurements):
//  - Bytes that reach the first socket of a pair in the microseconds before
//    its peer enters the map make that direction Copy for good (no_peer).
//  - A direction in Copy waits on the source's psock worker, which sends the
//    other direction first: a client that reads nothing until its upload is
//    done can stall an upload that overflowed while its download backlogged.
//  - A proxy that dies without unpair() leaves its tunnels' state entries in
//    splice_state (the sockets leave the map when they close); they are
//    freed with the map at `sonic prog unload`.
#pragma once

#include "bpf/bpffs.hpp"
#include "bpf/fd.hpp"
#include "sonic_abi.h"

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

namespace sonic::bpf {

enum class SpliceDir { ClientToUpstream = 0, UpstreamToClient = 1 };

enum class SpliceState { Spliced, Draining, CopyPending, Copy, Ended, Failed };

std::string_view splice_state_name(SpliceState state);

// How long to wait before calling advance() again on Draining or CopyPending.
inline constexpr std::chrono::microseconds kSpliceRetry{500};

class Splice;

// One client/upstream pair. Not thread-safe: one worker drives it.
class SpliceTunnel {
public:
	SpliceTunnel(const SpliceTunnel &) = delete;
	SpliceTunnel &operator=(const SpliceTunnel &) = delete;
	SpliceTunnel(SpliceTunnel &&other) noexcept;
	SpliceTunnel &operator=(SpliceTunnel &&other) = delete;
	~SpliceTunnel();

	// Looks at one direction and says what the caller does next (above).
	SpliceState advance(SpliceDir dir);
	// In Copy, after reading BYTES > 0 from the source: Copy when they may
	// be written to the destination now (every byte before them is in its
	// send queue), CopyPending when they must wait.
	SpliceState copy_read(SpliceDir dir, uint64_t bytes);
	// In Copy, after a read of 0: BYTES_READ is every byte the caller read
	// from the source in Copy and wrote to the destination. Returns Ended
	// (destination shut down for writing) when that is all the kernel left
	// on the source, else Copy.
	SpliceState copy_eof(SpliceDir dir, uint64_t bytes_read);

	// Bytes the kernel has forwarded in DIR since pair() (not counting what
	// the caller copied); 0 once unpaired. For metrics and idle checks: it
	// never throws.
	uint64_t redirected_bytes(SpliceDir dir) const;

	struct Unpaired {
		uint64_t discarded_bytes = 0; // held by the kernel for a destination
	};
	// Takes both sockets out of the map; the caller still owns and closes
	// the descriptors. Idempotent.
	Unpaired unpair();

	int client_fd() const { return fd_[0]; }
	int upstream_fd() const { return fd_[1]; }

private:
	friend class Splice;
	SpliceTunnel(std::shared_ptr<const Splice> splice, int client_fd, int upstream_fd);

	// Bytes the kernel redirected from SIDE's socket (its state), and bytes
	// SIDE's destination has queued for sending since pair().
	uint64_t redirected(int side, uint32_t *flags) const;
	uint64_t delivered(int side) const;

	std::shared_ptr<const Splice> splice_;
	std::array<int, 2> fd_{-1, -1};          // client, upstream
	std::array<uint64_t, 2> cookie_{};       // their SO_COOKIEs
	std::array<uint64_t, 2> base_{};         // bytes each had queued to send at pair()
	std::array<SpliceState, 2> state_{SpliceState::Spliced, SpliceState::Spliced}; // per direction
	std::array<uint64_t, 2> copied_{};       // bytes the caller was told to write, per direction
	std::array<uint64_t, 2> drained_{};      // redirected count known to be sent, per direction
	bool paired_ = false;
};

// The pinned family, shared by every worker thread: its methods only use the
// map descriptors, which the kernel serialises.
class Splice : public std::enable_shared_from_this<Splice> {
public:
	Splice(Fd socks, Fd state) : socks_(std::move(socks)), state_(std::move(state)) {}

	// Pairs two connected TCP sockets (see the contract above). Throws an
	// Error and leaves both sockets as they were when the kernel refuses one
	// (not ESTABLISHED any more, map full, already paired).
	SpliceTunnel pair(int client_fd, int upstream_fd) const;

	int socks_fd() const { return socks_.get(); }
	int state_fd() const { return state_.get(); }

private:
	Fd socks_, state_;
};

struct SpliceOpen {
	std::shared_ptr<const Splice> splice; // null when unavailable
	std::string unavailable;              // why, for the proxy's log
};

// Opens the family pinned under FS. With LOAD, loads and attaches it first
// when it is missing (needs CAP_BPF and CAP_NET_ADMIN). Never throws for a
// reason that only means "copy in userspace".
SpliceOpen open_splice(const Bpffs &fs, bool load);

// Loads the family if needed and attaches splice_verdict to splice_socks
// (a pinned link on kernels with sockmap links, else a map attachment).
// Returns whether anything changed. The caller holds the bpffs lock.
bool splice_attach(const Bpffs &fs);

struct SpliceCounters {
	uint64_t sockets = 0; // in the SOCKHASH now
	uint64_t tunnels = 0; // paired client sockets now
	uint64_t copying = 0; // directions now copied by userspace
	std::array<uint64_t, SONIC_SPLICE_NR_COUNTERS> counter{};
};

// snake_case name of a counter, as printed by `sonic stats splice`.
std::string_view splice_counter_name(size_t index);

SpliceCounters splice_counters(const Bpffs &fs);

} // namespace sonic::bpf
