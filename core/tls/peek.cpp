#include "tls/peek.hpp"

#include <algorithm>

namespace sonic::tls {

namespace {

constexpr uint8_t kHandshakeRecord = 22;
constexpr uint8_t kClientHello = 1;
constexpr size_t kRecordHeader = 5;
constexpr size_t kMaxRecord = 16384 + 2048; // TLSPlaintext limit, with the slack TLS 1.2 allows

enum Ext : uint16_t { ServerName = 0, Alpn = 16, SupportedVersions = 43 };

// A bounds-checked cursor over a hello's bytes: any read past the end
// sets bad and yields zeros, so the parser checks once per structure.
class Reader {
public:
	explicit Reader(std::string_view b) : b_(b) {}
	bool bad = false;

	size_t left() const { return b_.size() - pos_; }
	uint32_t u(size_t n)
	{
		if (left() < n) {
			bad = true;
			pos_ = b_.size();
			return 0;
		}
		uint32_t v = 0;
		for (size_t i = 0; i < n; ++i)
			v = v << 8 | static_cast<uint8_t>(b_[pos_ + i]);
		pos_ += n;
		return v;
	}
	std::string_view take(size_t n)
	{
		if (left() < n) {
			bad = true;
			pos_ = b_.size();
			return {};
		}
		std::string_view s = b_.substr(pos_, n);
		pos_ += n;
		return s;
	}
	// A vector with an N-byte length prefix.
	Reader vec(size_t n) { return Reader(take(u(n))); }

private:
	std::string_view b_;
	size_t pos_ = 0;
};

bool parse_sni(Reader r, ClientHello &h)
{
	Reader list = r.vec(2);
	while (!list.bad && list.left() > 0) {
		uint32_t type = list.u(1);
		std::string_view name = list.take(list.u(2));
		if (type == 0 && h.sni.empty() && !list.bad) {
			h.sni.assign(name);
			for (char &c : h.sni)
				if (c >= 'A' && c <= 'Z')
					c = static_cast<char>(c + 32);
			if (!h.sni.empty() && h.sni.back() == '.')
				h.sni.pop_back();
		}
	}
	return !list.bad && !r.bad && r.left() == 0 && h.sni.find('\0') == std::string::npos;
}

bool parse_alpn(Reader r, ClientHello &h)
{
	Reader list = r.vec(2);
	while (!list.bad && list.left() > 0) {
		std::string_view p = list.take(list.u(1));
		if (p.empty())
			return false; // RFC 7301: empty names are not allowed
		h.alpn.emplace_back(p);
	}
	return !list.bad && !r.bad && r.left() == 0;
}

// RFC 8446 4.2.1: ProtocolVersion versions<2..254> in a ClientHello, so an
// empty or odd-length list is malformed.
bool parse_versions(Reader r, ClientHello &h)
{
	Reader list = r.vec(1);
	if (list.left() == 0 || list.left() % 2)
		return false;
	std::vector<uint16_t> v;
	while (!list.bad && list.left() > 0)
		v.push_back(static_cast<uint16_t>(list.u(2)));
	h.versions = std::move(v);
	h.has_supported_versions = true;
	return !list.bad && !r.bad && r.left() == 0;
}

// The ClientHello body (after its 4-byte handshake header).
HelloStatus parse_body(std::string_view body, ClientHello &h)
{
	Reader r(body);
	h.legacy_version = static_cast<uint16_t>(r.u(2));
	r.take(32); // random
	Reader session = r.vec(1);
	if (session.left() > 32)
		return HelloStatus::Malformed;
	Reader suites = r.vec(2);
	if (suites.left() == 0 || suites.left() % 2)
		return HelloStatus::Malformed;
	Reader compression = r.vec(1);
	if (compression.left() == 0 || r.bad)
		return HelloStatus::Malformed;
	h.versions = {h.legacy_version};
	if (r.left() == 0)
		return HelloStatus::Complete; // no extensions (SSL 3.0 style)
	Reader exts = r.vec(2);
	if (r.bad || r.left() != 0)
		return HelloStatus::Malformed;
	bool seen_sni = false, seen_alpn = false, seen_versions = false;
	while (exts.left() > 0) {
		uint16_t type = static_cast<uint16_t>(exts.u(2));
		Reader data = exts.vec(2);
		if (exts.bad)
			return HelloStatus::Malformed;
		bool ok = true;
		bool *seen = nullptr;
		switch (type) {
		case ServerName: seen = &seen_sni; ok = parse_sni(data, h); break;
		case Alpn: seen = &seen_alpn; ok = parse_alpn(data, h); break;
		case SupportedVersions: seen = &seen_versions; ok = parse_versions(data, h); break;
		default: break;
		}
		if (!ok)
			return HelloStatus::Malformed;
		if (seen) {
			if (*seen)
				return HelloStatus::Malformed; // RFC 8446 4.2: one of each
			*seen = true;
		}
	}
	return HelloStatus::Complete;
}

} // namespace

const char *hello_status_name(HelloStatus s)
{
	switch (s) {
	case HelloStatus::Complete: return "complete";
	case HelloStatus::NeedMore: return "need more";
	case HelloStatus::NotTls: return "not TLS";
	case HelloStatus::Malformed: return "malformed";
	case HelloStatus::TooBig: return "too big";
	}
	return "?";
}

bool ClientHello::offers(uint16_t version) const
{
	return std::find(versions.begin(), versions.end(), version) != versions.end();
}

uint16_t ClientHello::best_modern() const
{
	// Without supported_versions the client speaks TLS 1.2 at most, and
	// any client_version from 0x0303 up accepts it: RFC 8446 4.2.1 (even
	// when legacy_version is 0x0304 or later) and RFC 5246 E.1. With the
	// extension, only its list counts.
	if (!has_supported_versions)
		return legacy_version >= 0x0303 ? 0x0303 : 0;
	if (offers(0x0304))
		return 0x0304;
	if (offers(0x0303))
		return 0x0303;
	return 0;
}

ClientHello parse_client_hello(std::string_view bytes)
{
	ClientHello h;
	// The handshake messages' bytes, gathered from consecutive records.
	std::string hs;
	size_t pos = 0;
	for (;;) {
		// A record header, as far as it has arrived.
		size_t have = bytes.size() - pos;
		if (have >= 1 && static_cast<uint8_t>(bytes[pos]) != kHandshakeRecord) {
			h.status = pos == 0 ? HelloStatus::NotTls : HelloStatus::Malformed;
			return h;
		}
		if (have >= 2 && static_cast<uint8_t>(bytes[pos + 1]) != 3) {
			h.status = pos == 0 ? HelloStatus::NotTls : HelloStatus::Malformed;
			return h;
		}
		if (have < kRecordHeader) {
			h.status = HelloStatus::NeedMore;
			return h;
		}
		size_t len = static_cast<uint8_t>(bytes[pos + 3]) << 8 | static_cast<uint8_t>(bytes[pos + 4]);
		if (len == 0 || len > kMaxRecord) {
			h.status = HelloStatus::Malformed;
			return h;
		}
		size_t avail = std::min(len, have - kRecordHeader);
		hs.append(bytes.substr(pos + kRecordHeader, avail));
		if (hs.size() >= 4) {
			if (static_cast<uint8_t>(hs[0]) != kClientHello) {
				h.status = pos == 0 ? HelloStatus::NotTls : HelloStatus::Malformed;
				return h;
			}
			size_t msg = static_cast<uint8_t>(hs[1]) << 16 | static_cast<uint8_t>(hs[2]) << 8 |
				     static_cast<uint8_t>(hs[3]);
			if (msg > kMaxHelloBytes) {
				h.status = HelloStatus::TooBig;
				return h;
			}
			if (hs.size() >= 4 + msg) {
				h.status = parse_body(std::string_view(hs).substr(4, msg), h);
				return h;
			}
		}
		if (avail < len) {
			h.status = HelloStatus::NeedMore;
			return h;
		}
		pos += kRecordHeader + len;
	}
}

bool name_matches(std::string_view glob, std::string_view name)
{
	auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
	if (glob.substr(0, 3) == "**.") {
		std::string_view base = glob.substr(3);
		if (name.size() < base.size())
			return false;
		std::string_view tail = name.substr(name.size() - base.size());
		if (!name_matches(base, tail))
			return false;
		return name.size() == base.size() || name[name.size() - base.size() - 1] == '.';
	}
	// Backtracking over '*', which never crosses a dot.
	size_t g = 0, n = 0, star = std::string_view::npos, mark = 0;
	while (n < name.size()) {
		if (g < glob.size() && glob[g] == '*') {
			star = g++;
			mark = n;
		} else if (g < glob.size() && lower(glob[g]) == lower(name[n])) {
			++g;
			++n;
		} else if (star != std::string_view::npos && name[mark] != '.') {
			g = star + 1;
			n = ++mark;
		} else {
			return false;
		}
	}
	while (g < glob.size() && glob[g] == '*')
		++g;
	return g == glob.size();
}

std::string version_name(uint16_t version)
{
	switch (version) {
	case 0x0300: return "SSL 3.0";
	case 0x0301: return "TLS 1.0";
	case 0x0302: return "TLS 1.1";
	case 0x0303: return "TLS 1.2";
	case 0x0304: return "TLS 1.3";
	}
	static const char digits[] = "0123456789abcdef";
	std::string s = "0x";
	for (int shift = 12; shift >= 0; shift -= 4)
		s += digits[(version >> shift) & 15];
	return s;
}

} // namespace sonic::tls
