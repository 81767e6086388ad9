// Counters of one worker. Each worker writes only its own (a relaxed load
// and store, no locked instruction on the request path); the admin listener
// reads every worker's and adds them up.
#pragma once

#include "bpf/fw.hpp"

#include <atomic>
#include <memory>
#include <optional>
#include <cstdint>
#include <string>
#include <vector>

namespace sonic::js {
struct Program;
}

namespace sonic::proxy {

class Counter {
public:
	void add(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
	void sub(uint64_t n = 1) { v_.store(v_.load(std::memory_order_relaxed) - n, std::memory_order_relaxed); }
	uint64_t get() const { return v_.load(std::memory_order_relaxed); }

private:
	std::atomic<uint64_t> v_{0};
};

enum class TunnelKind { Connect, Upgrade, Tcp, Transparent };

// The limits that close a new connection at once ([limits]).
enum class Limit { MaxConnections, MaxConnectionsPerIp };
constexpr int kLimits = 2;
const char *limit_name(Limit limit);
constexpr int kTunnelKinds = 4;
// Why a client's TLS was closed before a request: a ClientHello that broke
// the format or was over 16 KiB, one slower than client_header, no
// TLS 1.2 or 1.3 offered, the handshake failing (the client refused the
// leaf, ...), no leaf to serve.
enum class TlsFailure { BadHello, SlowHello, OldVersion, Handshake, NoLeaf };
constexpr int kTlsFailures = 5;
const char *tls_failure_name(TlsFailure f);
const char *tunnel_kind_name(TunnelKind kind);

struct alignas(64) Metrics {
	Counter connections_accepted;
	Counter connections_active;
	Counter connections_refused[kLimits];
	// Requests answered 503 for their address's request rate.
	Counter requests_rate_limited;
	// Connections or requests let through untracked: the per-address table
	// had no room for their address.
	Counter client_table_full;
	// accept() failures (EMFILE, ENFILE, ENOBUFS, ...), and idle keep-alive
	// connections closed to make room when accepting had to pause.
	Counter accept_errors;
	Counter idle_closed_for_room;
	Counter requests[6]; // by status class: [1] = 1xx ... [5] = 5xx; [0] unused
	Counter upstream_connects;
	Counter upstream_reuses;
	Counter upstream_connect_errors;
	Counter upstream_timeouts;
	Counter client_aborts;
	Counter tunnels[kTunnelKinds];
	Counter tunnels_active;
	// Tunnel bytes client -> upstream (up) and upstream -> client (down),
	// forwarded by the kernel (spliced) or through sonic's buffers (copied).
	Counter tunnel_spliced_up;
	Counter tunnel_spliced_down;
	Counter tunnel_copied_up;
	Counter tunnel_copied_down;
	// 5xx answers sonic made itself, by proxy::Cause (proxy/upstream.hpp).
	static constexpr int kLocalErrorCauses = 11;
	Counter local_errors[kLocalErrorCauses];
	// Worker scripts: requests they ran on, and those that threw or hit a
	// limit.
	Counter script_runs;
	Counter script_errors;
	// TLS: client connections whose TLS sonic terminated (intercepted) or
	// passed through as it was, client handshakes that resumed, and those
	// that failed, by why.
	Counter tls_intercepted;
	Counter tls_passthrough;
	Counter tls_resumed;
	Counter tls_failures[kTlsFailures];
	// Leaves served from memory at once, and those loaded or minted off the
	// event loop.
	Counter tls_cert_hits;
	Counter tls_cert_misses;
	// TLS to origins.
	Counter tls_upstream_handshakes;
	Counter tls_upstream_resumed;
	Counter tls_upstream_failures;
	// Handshake steps (both sides) that waited a turn of the event loop
	// behind open connections' I/O (the worker's handshake Lane).
	Counter tls_handshake_waits;
	// Timed-out client connections whose ending waited a turn of the
	// event loop (the worker's timeout lane).
	Counter timeout_waits;

	void count_status(int status)
	{
		int cls = status / 100;
		requests[cls >= 1 && cls <= 5 ? cls : 5].add();
	}
};

// Process-wide facts the admin listener adds to the workers' counters.
struct ServerFacts {
	uint64_t reloads = 0;
	uint64_t reload_errors = 0;
	bool draining = false;
	unsigned workers = 0;
	std::optional<bpf::FwMetrics> fw; // read from the pinned maps when fw is loaded
	// The worker scripts of the configuration in use, with their counters.
	std::vector<std::shared_ptr<const js::Program>> scripts;
};

// Prometheus text exposition (version 0.0.4) of every worker's counters.
std::string prometheus_text(const std::vector<const Metrics *> &workers, const ServerFacts &facts);

} // namespace sonic::proxy
