// Limits per client IP address, shared by every worker: the connections
// each address has open (max_connections_per_ip) and its request rate
// (requests_per_second_per_ip, a token bucket). A client's connections land
// on any worker (SO_REUSEPORT hashes the source port too), so a per-worker
// count would let it have N times its share.
//
// Both live in fixed tables of 64-bit words updated with compare-and-swap:
// no lock on the request path, no allocation per client, memory bounded
// whatever the number of addresses. An address is found by a keyed hash in
// a window of kProbe slots. Entries that hold nothing (no connection open,
// a bucket refilled to the brim) are taken over by other addresses. When a
// window is full of live entries the address is let through untracked
// (counted in table_full): an attacker with many addresses cannot make
// sonic refuse clients it never saw.
#pragma once

#include "net/local.hpp"
#include "proxy/asio.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace sonic::proxy {

// An address as the tables key it: IPv4 in its IPv6-mapped form.
net::Addr16 addr16(const asio::ip::address &address);

class ClientLimits {
public:
	// Tables of 2^CONN_BITS and 2^RATE_BITS slots, mapped but untouched
	// until used (so an unused table costs no memory).
	explicit ClientLimits(unsigned conn_bits = 17, unsigned rate_bits = 17);
	~ClientLimits();
	ClientLimits(const ClientLimits &) = delete;
	ClientLimits &operator=(const ClientLimits &) = delete;

	static constexpr size_t kProbe = 8;

	// A connection counted against its address until it goes.
	class Ticket {
	public:
		Ticket() = default;
		Ticket(ClientLimits *owner, uint64_t hash) : owner_(owner), hash_(hash) {}
		Ticket(Ticket &&o) noexcept : owner_(o.owner_), hash_(o.hash_) { o.owner_ = nullptr; }
		Ticket &operator=(Ticket &&o) noexcept;
		~Ticket() { release(); }
		void release();

	private:
		ClientLimits *owner_ = nullptr;
		uint64_t hash_ = 0;
	};

	enum class Admission { Admitted, Refused, Untracked };
	struct Admit {
		Admission admission = Admission::Untracked;
		Ticket ticket; // empty unless Admitted
	};
	// Counts a new connection from IP when it has fewer than MAX open.
	Admit admit(const net::Addr16 &ip, unsigned max);

	struct Rate {
		bool allowed = true;
		bool untracked = false;
		std::chrono::seconds retry_after{0}; // when refused: until a token is back
	};
	// Takes a token from IP's bucket (RATE per second, BURST deep).
	Rate take(const net::Addr16 &ip, double rate, double burst, std::chrono::steady_clock::time_point now);

	// Connections open from IP as counted (tests).
	unsigned open_from(const net::Addr16 &ip) const;

private:
	uint64_t hash(const net::Addr16 &ip) const;
	void release(uint64_t hash);

	uint64_t seed_[2];
	size_t conn_mask_, rate_mask_;
	uint64_t *conns_;     // tag (48 bits) << 16 | open connections (16 bits); 0: free
	uint64_t *rate_keys_; // the address's hash; 0: free
	uint64_t *rate_state_; // tokens (1/1024 units) << 32 | time of the last refill (ms)
	std::chrono::steady_clock::time_point epoch_;
};

} // namespace sonic::proxy
