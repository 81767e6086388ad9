#include "proxy/access_log.hpp"

#include <cerrno>
#include <charconv>
#include <ctime>
#include <unistd.h>

namespace sonic::proxy {

namespace {

constexpr size_t kFlushAt = 4096;

void append_number(std::string &out, uint64_t v)
{
	char buf[24];
	auto r = std::to_chars(buf, buf + sizeof(buf), v);
	out.append(buf, static_cast<size_t>(r.ptr - buf));
}

void field(std::string &out, const char *name, std::string_view value)
{
	out += ",\"";
	out += name;
	out += "\":\"";
	append_json_escaped(out, value);
	out += '"';
}

} // namespace

void append_json_escaped(std::string &out, std::string_view s)
{
	static const char kHex[] = "0123456789abcdef";
	for (unsigned char c : s) {
		if (c == '"' || c == '\\') {
			out += '\\';
			out += static_cast<char>(c);
		} else if (c < 0x20 || c >= 0x7f) {
			// Bytes outside ASCII are escaped one by one, so a line is valid
			// JSON whatever a client sent.
			out += "\\u00";
			out += kHex[c >> 4];
			out += kHex[c & 15];
		} else {
			out += static_cast<char>(c);
		}
	}
}

void AccessLog::add(const LogEntry &e)
{
	if (fd_ < 0)
		return;
	using namespace std::chrono;
	auto now = system_clock::now();
	auto since = now.time_since_epoch();
	time_t secs = static_cast<time_t>(duration_cast<seconds>(since).count());
	if (secs != second_) {
		std::tm tm{};
		gmtime_r(&secs, &tm);
		std::strftime(stamp_, sizeof(stamp_), "%Y-%m-%dT%H:%M:%S", &tm);
		second_ = secs;
	}
	const size_t start = buf_.size();
	unsigned ms = static_cast<unsigned>(duration_cast<milliseconds>(since).count() % 1000);
	char frac[6] = {'.', static_cast<char>('0' + ms / 100), static_cast<char>('0' + ms / 10 % 10),
			static_cast<char>('0' + ms % 10), 'Z', 0};
	buf_ += "{\"time\":\"";
	buf_ += stamp_;
	buf_ += frac;
	buf_ += '"';
	field(buf_, "client", e.client);
	field(buf_, "method", e.method);
	field(buf_, "host", e.host);
	field(buf_, "path", e.path);
	buf_ += ",\"status\":";
	append_number(buf_, static_cast<uint64_t>(e.status));
	buf_ += ",\"bytes_sent\":";
	append_number(buf_, e.bytes_sent);
	buf_ += ",\"bytes_received\":";
	append_number(buf_, e.bytes_received);
	field(buf_, "upstream", e.upstream);
	uint64_t us = static_cast<uint64_t>(duration_cast<microseconds>(e.duration).count());
	buf_ += ",\"duration_ms\":";
	append_number(buf_, us / 1000);
	buf_ += '.';
	buf_ += static_cast<char>('0' + us / 100 % 10);
	buf_ += static_cast<char>('0' + us / 10 % 10);
	buf_ += static_cast<char>('0' + us % 10);
	field(buf_, "mode", e.mode);
	if (!e.script.empty()) {
		field(buf_, "script", e.script);
		field(buf_, "script_outcome", e.script_outcome);
	}
	if (!e.tls.empty()) {
		field(buf_, "tls", e.tls);
		field(buf_, "sni", e.sni);
		if (!e.tls_version.empty())
			field(buf_, "tls_version", e.tls_version);
		if (!e.cipher.empty())
			field(buf_, "cipher", e.cipher);
		if (!e.alpn.empty())
			field(buf_, "alpn", e.alpn);
		if (e.tls_resumed)
			buf_ += ",\"tls_resumed\":true";
	}
	buf_ += "}\n";
	// A write of at most PIPE_BUF (4 KiB) bytes to a pipe is atomic: keep
	// each write under it when the lines allow.
	if (buf_.size() > kFlushAt && start > 0) {
		std::string line = buf_.substr(start);
		buf_.resize(start);
		flush();
		buf_ = std::move(line);
	}
	if (buf_.size() >= kFlushAt)
		flush();
}

void AccessLog::flush()
{
	size_t off = 0;
	while (off < buf_.size()) {
		ssize_t n = ::write(fd_, buf_.data() + off, buf_.size() - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; // a full disk or a closed pipe loses log lines, never requests
		off += static_cast<size_t>(n);
	}
	buf_.clear();
}

} // namespace sonic::proxy
