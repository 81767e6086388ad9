#include "proxy/tls_stream.hpp"

#include "tls/gnutls.hpp"
#include "tls/leaf.hpp"

#include <gnutls/x509.h>

#include <cerrno>
#include <cstring>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

namespace sonic::proxy {

namespace {

const gnutls_datum_t kHttp11{reinterpret_cast<unsigned char *>(const_cast<char *>("http/1.1")), 8};

bool is_address(const std::string &name)
{
	asio::error_code ec;
	asio::ip::make_address(name, ec);
	return !ec;
}

} // namespace

TlsEngine::~TlsEngine()
{
	if (s_)
		gnutls_deinit(s_);
}

void TlsEngine::set_transport()
{
	gnutls_transport_set_ptr(s_, this);
	gnutls_transport_set_pull_function(s_, pull);
	gnutls_transport_set_vec_push_function(s_, vec_push);
	gnutls_transport_set_pull_timeout_function(s_, pull_timeout);
	asio::error_code ec;
	sock_.native_non_blocking(true, ec);
}

void TlsEngine::init_server(const TlsContext &ctx, std::shared_ptr<const tls::Leaf> leaf, std::string before)
{
	tls::check(gnutls_init(&s_, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL), "gnutls_init");
	leaf_ = std::move(leaf);
	if (!before.empty()) {
		ahead_cap_ = std::max(before.size(), kReadAhead);
		ahead_ = std::make_unique_for_overwrite<char[]>(ahead_cap_);
		std::memcpy(ahead_.get(), before.data(), before.size());
		ahead_end_ = before.size();
	}
	// The credentials' retrieve function serves the leaf the session points at.
	gnutls_session_set_ptr(s_, const_cast<tls::Leaf *>(leaf_.get()));
	tls::check(gnutls_priority_set(s_, ctx.server_priority()), "gnutls_priority_set");
	tls::check(gnutls_credentials_set(s_, GNUTLS_CRD_CERTIFICATE, ctx.server_credentials()), "gnutls_credentials_set");
	tls::check(gnutls_session_ticket_enable_server(s_, ctx.ticket_key()), "gnutls_session_ticket_enable_server");
	// http/1.1 only: a client offering h2 and http/1.1 gets http/1.1; one
	// offering only h2 gets no ALPN and speaks HTTP/1.1 or leaves.
	tls::check(gnutls_alpn_set_protocols(s_, &kHttp11, 1, GNUTLS_ALPN_SERVER_PRECEDENCE), "gnutls_alpn_set_protocols");
	gnutls_certificate_server_set_request(s_, GNUTLS_CERT_IGNORE);
	gnutls_handshake_set_timeout(s_, 0); // the session's deadline bounds it
	set_transport();
}

void TlsEngine::init_client(const TlsContext &ctx, const std::string &name, const std::string &resume)
{
	tls::check(gnutls_init(&s_, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL), "gnutls_init");
	tls::check(gnutls_priority_set(s_, ctx.client_priority()), "gnutls_priority_set");
	tls::check(gnutls_credentials_set(s_, GNUTLS_CRD_CERTIFICATE, ctx.client_credentials()), "gnutls_credentials_set");
	sni_ = name;
	if (!name.empty() && !is_address(name))
		tls::check(gnutls_server_name_set(s_, GNUTLS_NAME_DNS, name.data(), name.size()), "gnutls_server_name_set");
	// GnuTLS keeps the pointer: the string lives as long as the session.
	verify_name_ = name;
	gnutls_session_set_verify_cert(s_, verify_name_.empty() ? nullptr : verify_name_.c_str(), 0);
	// Set once: a second call breaks the ClientHello (GnuTLS 3.7.9).
	tls::check(gnutls_alpn_set_protocols(s_, &kHttp11, 1, 0), "gnutls_alpn_set_protocols");
	if (!resume.empty())
		gnutls_session_set_data(s_, resume.data(), resume.size());
	gnutls_handshake_set_timeout(s_, 0);
	set_transport();
}

ssize_t TlsEngine::receive(void *data, size_t size)
{
	ssize_t n = ::recv(sock_.native_handle(), data, size, 0);
	if (n < 0)
		gnutls_transport_set_errno(s_, errno);
	return n;
}

ssize_t TlsEngine::refill()
{
	if (!ahead_) {
		ahead_cap_ = kReadAhead;
		ahead_ = std::make_unique_for_overwrite<char[]>(kReadAhead);
	}
	ssize_t n = receive(ahead_.get(), ahead_cap_);
	ahead_at_ = 0;
	ahead_end_ = n > 0 ? static_cast<size_t>(n) : 0;
	return n;
}

ssize_t TlsEngine::pull(gnutls_transport_ptr_t self, void *data, size_t size)
{
	auto *e = static_cast<TlsEngine *>(self);
	size_t n;
	if (e->read_ahead() == 0 && size >= kReadAhead) {
		ssize_t got = e->receive(data, size); // a large record's body: straight in
		if (got <= 0)
			return got;
		n = static_cast<size_t>(got);
	} else {
		if (e->read_ahead() == 0) {
			ssize_t got = e->refill();
			if (got <= 0)
				return got;
		}
		n = std::min(size, e->read_ahead());
		std::memcpy(data, e->ahead_.get() + e->ahead_at_, n);
		e->ahead_at_ += n;
	}
	if (!e->established_)
		e->keep_tail(static_cast<const unsigned char *>(data), n);
	return static_cast<ssize_t>(n);
}

void TlsEngine::keep_tail(const unsigned char *data, size_t n)
{
	// The last bytes read during the handshake: a peer that gives up in
	// TLS 1.3 before it has keys sends its alert in the clear, which GnuTLS
	// then fails to decrypt; its description is read back from here.
	const size_t cap = sizeof(tail_);
	if (n >= cap) {
		std::memcpy(tail_, data + n - cap, cap);
		tail_len_ = cap;
		return;
	}
	const size_t keep = std::min(tail_len_, cap - n);
	std::memmove(tail_, tail_ + tail_len_ - keep, keep);
	std::memcpy(tail_ + keep, data, n);
	tail_len_ = keep + n;
}

ssize_t TlsEngine::vec_push(gnutls_transport_ptr_t self, const giovec_t *iov, int count)
{
	auto *e = static_cast<TlsEngine *>(self);
	msghdr m{};
	m.msg_iov = reinterpret_cast<iovec *>(const_cast<giovec_t *>(iov));
	m.msg_iovlen = static_cast<size_t>(count);
	ssize_t n = ::sendmsg(e->sock_.native_handle(), &m, MSG_NOSIGNAL);
	if (n < 0)
		gnutls_transport_set_errno(e->s_, errno);
	return n;
}

int TlsEngine::pull_timeout(gnutls_transport_ptr_t self, unsigned)
{
	// Never blocks: the event loop waits, not GnuTLS.
	auto *e = static_cast<TlsEngine *>(self);
	if (e->read_ahead())
		return 1;
	pollfd p{e->sock_.native_handle(), POLLIN, 0};
	return ::poll(&p, 1, 0);
}

void TlsEngine::cancel()
{
	cancelled_ = true;
	asio::error_code ec;
	sock_.cancel(ec);
}

awaitable<bool> TlsEngine::wait_ready()
{
	const bool writing = gnutls_record_get_direction(s_) == 1;
	// GnuTLS also says "again" after a record that carried no data (a
	// ticket, a key update) while the next record is read already: in the
	// read-ahead or decrypted in GnuTLS. The socket may never signal again.
	if (!writing && (read_ahead() || gnutls_record_check_pending(s_)))
		co_return true;
	co_await sock_.async_wait(writing ? tcp::socket::wait_write : tcp::socket::wait_read, with(wait_error_));
	co_return !wait_error_;
}

awaitable<int> TlsEngine::handshake(Lane &lane)
{
	for (;;) {
		co_await lane.turn();
		if (cancelled_) {
			wait_error_ = asio::error::operation_aborted;
			error_ = GNUTLS_E_PULL_ERROR;
			co_return error_;
		}
		int rc = gnutls_handshake(s_);
		if (rc == GNUTLS_E_SUCCESS) {
			error_ = 0;
			established_ = true;
			co_return 0;
		}
		if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
			bool ready = co_await wait_ready();
			if (!ready) {
				error_ = GNUTLS_E_PULL_ERROR;
				co_return error_;
			}
			continue;
		}
		if (rc == GNUTLS_E_WARNING_ALERT_RECEIVED)
			continue;
		if (gnutls_error_is_fatal(rc) == 0)
			continue;
		error_ = rc;
		if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED)
			alert_ = static_cast<int>(gnutls_alert_get(s_));
		else if (tail_len_ >= 7 && tail_[tail_len_ - 7] == 21 && tail_[tail_len_ - 6] == 3 &&
			 tail_[tail_len_ - 4] == 0 && tail_[tail_len_ - 3] == 2 && tail_[tail_len_ - 2] == 2)
			alert_ = tail_[tail_len_ - 1]; // a fatal alert in the clear
		if (rc != GNUTLS_E_FATAL_ALERT_RECEIVED)
			gnutls_alert_send_appropriate(s_, rc); // protocol_version for TLS 1.1, ...; sent if it fits
		co_return rc;
	}
}

IoResult TlsEngine::failed(int rc)
{
	IoResult r;
	error_ = rc;
	if (rc == 0 || rc == GNUTLS_E_PREMATURE_TERMINATION)
		r.error = asio::error::eof; // many peers close without close_notify
	else if (wait_error_)
		r.error = wait_error_;
	else
		r.error = asio::error::connection_reset;
	return r;
}

awaitable<IoResult> TlsEngine::read_some(std::span<char> buf)
{
	for (;;) {
		ssize_t rc = gnutls_record_recv(s_, buf.data(), buf.size());
		if (rc > 0)
			co_return IoResult{static_cast<size_t>(rc), {}};
		if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
			bool ready = co_await wait_ready();
			if (!ready)
				co_return failed(GNUTLS_E_PULL_ERROR);
			continue;
		}
		if (rc == GNUTLS_E_REHANDSHAKE) {
			// Renegotiation is refused, politely; the connection goes on.
			gnutls_alert_send(s_, GNUTLS_AL_WARNING, GNUTLS_A_NO_RENEGOTIATION);
			continue;
		}
		if (rc == GNUTLS_E_WARNING_ALERT_RECEIVED || rc == GNUTLS_E_GOT_APPLICATION_DATA)
			continue;
		wait_error_ = {};
		co_return failed(static_cast<int>(rc));
	}
}

awaitable<IoResult> TlsEngine::write_one(const char *data, size_t size)
{
	IoResult r;
	while (r.bytes < size) {
		ssize_t rc = gnutls_record_send(s_, data + r.bytes, size - r.bytes);
		if (rc > 0) {
			r.bytes += static_cast<size_t>(rc);
			continue;
		}
		if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
			// Called again with the same bytes, as GnuTLS asks.
			bool ready = co_await wait_ready();
			if (ready)
				continue;
			IoResult f = failed(GNUTLS_E_PUSH_ERROR);
			f.bytes = r.bytes;
			co_return f;
		}
		wait_error_ = {};
		IoResult f = failed(static_cast<int>(rc));
		f.bytes = r.bytes;
		co_return f;
	}
	co_return r;
}

awaitable<IoResult> TlsEngine::write(std::span<const asio::const_buffer> bufs)
{
	size_t nonempty = 0;
	const asio::const_buffer *only = nullptr;
	for (const asio::const_buffer &b : bufs)
		if (b.size()) {
			++nonempty;
			only = &b;
		}
	if (nonempty == 0)
		co_return IoResult{};
	if (nonempty == 1) {
		IoResult r = co_await write_one(static_cast<const char *>(only->data()), only->size());
		co_return r;
	}
	// Several pieces (a head and its body): corked into as few records as
	// they fill.
	gnutls_record_cork(s_);
	size_t total = 0;
	for (const asio::const_buffer &b : bufs) {
		if (!b.size())
			continue;
		ssize_t rc = gnutls_record_send(s_, b.data(), b.size());
		if (rc < 0) {
			gnutls_record_uncork(s_, 0);
			wait_error_ = {};
			co_return failed(static_cast<int>(rc));
		}
		total += b.size();
	}
	for (;;) {
		ssize_t rc = gnutls_record_uncork(s_, 0);
		if (rc >= 0)
			break;
		if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
			bool ready = co_await wait_ready();
			if (ready)
				continue;
			co_return failed(GNUTLS_E_PUSH_ERROR);
		}
		wait_error_ = {};
		co_return failed(static_cast<int>(rc));
	}
	co_return IoResult{total, {}};
}

void TlsEngine::bye()
{
	if (s_ && established_)
		gnutls_bye(s_, GNUTLS_SHUT_WR); // non-blocking: sent if it fits, else dropped
}

TlsFacts TlsEngine::facts() const
{
	TlsFacts f;
	f.sni = sni_;
	if (!s_)
		return f;
	if (const char *v = gnutls_protocol_get_name(gnutls_protocol_get_version(s_)))
		f.version = v;
	if (const char *c = gnutls_cipher_get_name(gnutls_cipher_get(s_)))
		f.cipher = c;
	gnutls_datum_t p{};
	if (gnutls_alpn_get_selected_protocol(s_, &p) == 0)
		f.alpn.assign(reinterpret_cast<const char *>(p.data), p.size);
	f.resumed = gnutls_session_is_resumed(s_) != 0;
	return f;
}

std::string TlsEngine::session_data() const
{
	if (!s_)
		return {};
	// TLS 1.3 resumes with a ticket, which comes after the handshake: until
	// one was read, the data would not resume anything.
	if (gnutls_protocol_get_version(s_) == GNUTLS_TLS1_3 &&
	    !(gnutls_session_get_flags(s_) & GNUTLS_SFLAGS_SESSION_TICKET))
		return {};
	gnutls_datum_t d{};
	if (gnutls_session_get_data2(s_, &d) < 0)
		return {};
	std::string out(reinterpret_cast<const char *>(d.data), d.size);
	gnutls_free(d.data);
	return out;
}

std::string TlsEngine::error_text() const
{
	if (error_ == 0)
		return {};
	if (error_ == GNUTLS_E_PULL_ERROR || error_ == GNUTLS_E_PUSH_ERROR) {
		if (wait_error_ == asio::error::operation_aborted)
			return "timed out";
		if (wait_error_)
			return wait_error_.message();
	}
	std::string text = gnutls_strerror(error_);
	if (error_ == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR && s_) {
		unsigned status = gnutls_session_get_verify_cert_status(s_);
		gnutls_datum_t out{};
		if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) == 0) {
			text.assign(reinterpret_cast<const char *>(out.data), out.size);
			gnutls_free(out.data);
		}
	}
	if (alert_ >= 0)
		text += std::string(" (alert: ") + gnutls_alert_get_name(static_cast<gnutls_alert_description_t>(alert_)) + ")";
	return text;
}

std::vector<std::string> TlsEngine::peer_names() const
{
	unsigned n = 0;
	const gnutls_datum_t *certs = s_ ? gnutls_certificate_get_peers(s_, &n) : nullptr;
	if (!certs || n == 0)
		return {};
	try {
		tls::Crt crt = tls::import_crt(std::string_view(reinterpret_cast<const char *>(certs[0].data), certs[0].size),
					       GNUTLS_X509_FMT_DER, "origin certificate");
		return tls::alt_names(crt.get());
	} catch (const std::exception &) {
		return {};
	}
}

awaitable<void> TlsEngineStream::shutdown()
{
	engine_.bye();
	asio::error_code ec;
	engine_.socket().shutdown(tcp::socket::shutdown_send, ec);
	co_return;
}

} // namespace sonic::proxy
