// The access log: one JSON object per line, per request or tunnel. Each
// worker fills its own buffer and writes whole lines to the shared file
// descriptor (O_APPEND) when the buffer nears 4 KiB or at its next tick, so
// lines from different workers never interleave.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace sonic::proxy {

struct LogEntry {
	std::string_view client;
	std::string_view method;
	std::string_view host;
	std::string_view path;
	int status = 0;
	uint64_t bytes_sent = 0;
	uint64_t bytes_received = 0;
	std::string_view upstream;
	std::chrono::steady_clock::duration duration{};
	std::string_view mode;
	// The worker script that ran, and what it did (pass, origin, respond,
	// throw, timeout, heap, passthrough); empty when none ran.
	std::string_view script;
	std::string_view script_outcome;
	// The client's TLS, when it spoke TLS: "intercepted" or "passthrough",
	// and what the ClientHello or the handshake said.
	std::string_view tls;
	std::string_view sni;
	std::string_view tls_version;
	std::string_view cipher;
	std::string_view alpn;
	bool tls_resumed = false;
};

class AccessLog {
public:
	// FD < 0: logging off.
	explicit AccessLog(int fd) : fd_(fd) { buf_.reserve(8192); }
	bool enabled() const { return fd_ >= 0; }
	void add(const LogEntry &e);
	// Writes what is buffered.
	void flush();
	bool pending() const { return !buf_.empty(); }

private:
	int fd_;
	std::string buf_;
	time_t second_ = 0;
	char stamp_[32] = {}; // "2026-01-02T03:04:05" of second_
};

// S as the body of a JSON string (without the quotes).
void append_json_escaped(std::string &out, std::string_view s);

} // namespace sonic::proxy
