#include "proxy/server.hpp"

#include "bpf/accel.hpp"
#include "bpf/fw.hpp"
#include "bpf/fw_block.hpp"
#include "bpf/probe.hpp"
#include "bpf/splice.hpp"
#include "net/listeners.hpp"
#include "out/error.hpp"
#include "out/log.hpp"
#include "proxy/admin.hpp"
#include "proxy/origdst.hpp"
#include "proxy/tls_context.hpp"
#include "proxy/worker.hpp"
#include "sys/notify.hpp"
#include "tls/state.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <netinet/in.h>
#include <set>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

namespace sonic::proxy {

namespace {

bool is_transparent(const config::Listener &l) { return l.mode == config::Mode::Transparent && l.tproxy; }

int open_log(const config::AccessLog &log)
{
	if (!log.enabled)
		return -1;
	if (log.path == "-")
		return STDOUT_FILENO;
	int fd = ::open(log.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		throw errno_error("open access log", errno, log.path);
	return fd;
}

bpf::BlockPolicy block_policy(const config::Fw &fw)
{
	bpf::BlockPolicy p;
	p.never_block = fw.never_block;
	p.per_minute = fw.blocks_per_minute;
	p.default_ttl = fw.block_ttl;
	return p;
}

// The fw counters for /metrics, when the family is loaded.
std::optional<bpf::FwMetrics> fw_metrics(const std::string &bpffs)
{
	try {
		return bpf::fw_metrics(bpf::Bpffs(bpffs));
	} catch (const std::exception &e) {
		log::debug(std::string("metrics: fw: ") + e.what());
		return std::nullopt;
	}
}

// An admin client (a monitoring host) is never blocked by a script.
void protect_peer(bpf::Blocker &blocker, asio::ip::address peer)
{
	if (peer.is_v6() && peer.to_v6().is_v4_mapped())
		peer = asio::ip::make_address_v4(asio::ip::v4_mapped, peer.to_v6());
	if (peer.is_v6())
		peer = asio::ip::address_v6(peer.to_v6().to_bytes()); // without a scope id
	blocker.protect(net::parse_ip(peer.to_string()));
}

void close_all(std::map<std::string, std::vector<int>> &fds)
{
	for (auto &[key, list] : fds)
		for (int fd : list)
			::close(fd);
	fds.clear();
}

// The processes listening where ENDPOINT is (as far as /proc shows them).
std::vector<net::Process> holders_of(const config::HostPort &endpoint)
{
	std::vector<uint64_t> inodes;
	for (const net::TcpListener &l : net::listeners_of(net::parse_endpoint(endpoint.text())))
		inodes.push_back(l.inode);
	return net::socket_holders(inodes);
}

Error address_in_use(const config::HostPort &endpoint, const std::vector<net::Process> &holders, bool shared)
{
	std::string who = net::describe(holders);
	Error e = env_error("listen", "address already in use" + (who.empty() ? std::string() : " by " + who),
			    endpoint.text());
	if (shared)
		e.with_hint("the sockets there do not let others join (no SO_REUSEPORT, or another user): stop that "
			    "process or choose another address");
	else
		e.with_hint("stop that process or choose another address; to share it on purpose (a binary upgrade "
			    "that overlaps), set reuse_port = true on the listener or run with --reuse-port");
	return e;
}

Error bind_error(const config::HostPort &endpoint, int err, bool shared)
{
	if (err == EADDRINUSE)
		return address_in_use(endpoint, holders_of(endpoint), shared);
	if (err == EADDRNOTAVAIL)
		return env_error("listen", "address not available on this host", endpoint.text());
	return errno_error("listen", err, endpoint.text());
}

// A TCP socket bound to ENDPOINT (not listening yet), or the bind's errno.
struct Bound {
	int fd = -1;
	int err = 0;
};

// SHARE sets SO_REUSEPORT, so that the next socket (another worker's, or
// another process's that asks the same) can bind there too.
Bound bind_socket(const config::HostPort &endpoint, bool transparent, bool share)
{
	sockaddr_storage ss{};
	socklen_t len = 0;
	if (inet_pton(AF_INET, endpoint.host.c_str(), &reinterpret_cast<sockaddr_in &>(ss).sin_addr) == 1) {
		auto &a = reinterpret_cast<sockaddr_in &>(ss);
		a.sin_family = AF_INET;
		a.sin_port = htons(endpoint.port);
		len = sizeof(a);
	} else if (inet_pton(AF_INET6, endpoint.host.c_str(), &reinterpret_cast<sockaddr_in6 &>(ss).sin6_addr) == 1) {
		auto &a = reinterpret_cast<sockaddr_in6 &>(ss);
		a.sin6_family = AF_INET6;
		a.sin6_port = htons(endpoint.port);
		len = sizeof(a);
	} else {
		throw usage_error("listen", "not an IP address", endpoint.text());
	}
	int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		throw errno_error("listen", errno, endpoint.text());
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (share)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (transparent) {
		if (int err = set_transparent(fd, ss.ss_family)) {
			::close(fd);
			throw errno_error("listen (IP_TRANSPARENT needs CAP_NET_ADMIN)", err, endpoint.text());
		}
	}
	if (::bind(fd, reinterpret_cast<sockaddr *>(&ss), len) != 0) {
		Bound b{-1, errno};
		::close(fd);
		return b;
	}
	return Bound{fd, 0};
}

// Refuses ENDPOINT when another process listens there. A bind without
// SO_REUSEPORT fails on an address any socket listens on, whatever that
// socket set; the probe is closed again at once. sonic's own listeners of
// an overlapping address (0.0.0.0:80 and 127.0.0.1:80) are no conflict.
void check_unclaimed(const config::HostPort &endpoint, bool transparent)
{
	Bound probe = bind_socket(endpoint, transparent, false);
	if (probe.fd >= 0) {
		::close(probe.fd);
		return;
	}
	if (probe.err != EADDRINUSE)
		throw bind_error(endpoint, probe.err, false);
	std::vector<net::Process> holders = holders_of(endpoint);
	const pid_t self = getpid();
	if (holders.empty() ||
	    !std::all_of(holders.begin(), holders.end(), [self](const net::Process &p) { return p.pid == self; }))
		throw address_in_use(endpoint, holders, false);
}

// Whether the workers take L's connections from one socket, each through a
// descriptor of its own, instead of a socket each (SO_REUSEPORT, the kernel
// spreading new connections). Before Linux 6.5 bpf_sk_assign() refuses
// SO_REUSEPORT sockets, so tc steering (`sonic tproxy add dev`) could not
// reach a transparent listener that set it: every SYN would be dropped.
// Where the kernel cannot be probed and is older than 6.5, one socket is
// the choice that works on every kernel. A listener that joins another
// process's (reuse_port) keeps SO_REUSEPORT, as asked, and is warned about.
bool shares_one_socket(const config::Listener &l)
{
	if (l.mode != config::Mode::Transparent)
		return false;
	const bpf::ProbeResult &probe = bpf::sk_assign_reuseport();
	if (probe.available == true)
		return false;
	// A service without CAP_SYS_ADMIN (sonic.service) cannot make the
	// probe's namespace: the release stands in, 6.5 being where the kernel
	// began to take such sockets.
	if (!probe.available && bpf::kernel_release_at_least(6, 5))
		return false;
	const std::string why = probe.available ? probe.detail
						: "this kernel could not be probed (" + probe.detail + ") and is older than 6.5";
	if (l.reuse_port) {
		log::warn("listener " + l.address.text() + " (reuse_port): tc steering (`sonic tproxy add dev`) cannot "
			  "reach it: " + why);
		return false;
	}
	log::info("listener " + l.address.text() + ": one socket shared by the workers, not one each: " + why);
	return true;
}

int duplicate(int fd, const config::HostPort &endpoint)
{
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (copy < 0)
		throw errno_error("listen", errno, endpoint.text());
	return copy;
}

// One socket per worker for each listener of CONFIG not in SKIP. Addresses
// are checked first, so that nothing is bound when one is taken.
std::map<std::string, std::vector<int>> open_listeners(const config::Config &config, unsigned workers,
							const std::set<std::string> &skip)
{
	for (const config::Listener &l : config.listeners)
		if (!skip.count(l.address.text()) && !l.reuse_port)
			check_unclaimed(l.address, is_transparent(l));
	std::map<std::string, std::vector<int>> fds;
	try {
		for (const config::Listener &l : config.listeners) {
			std::string key = l.address.text();
			if (skip.count(key))
				continue;
			auto &list = fds[key];
			if (shares_one_socket(l)) {
				list.push_back(open_listener(l.address, is_transparent(l), false));
				for (unsigned i = 1; i < workers; ++i)
					list.push_back(duplicate(list.front(), l.address));
			} else {
				for (unsigned i = 0; i < workers; ++i)
					list.push_back(open_listener(l.address, is_transparent(l), true));
			}
		}
	} catch (...) {
		close_all(fds);
		throw;
	}
	return fds;
}

// How many client connections one of WORKERS can hold with the descriptors
// RLIMIT_NOFILE leaves: not those open now (listeners, logs, BPF maps) nor a
// reserve for the workers' event loops and the admin listener, and half of
// the rest, since each client may need an upstream connection besides.
uint64_t descriptor_share(unsigned workers)
{
	struct rlimit nofile{};
	if (getrlimit(RLIMIT_NOFILE, &nofile) != 0 || nofile.rlim_cur == RLIM_INFINITY)
		return UINT64_MAX;
	uint64_t open_now = 0;
	if (DIR *d = opendir("/proc/self/fd")) {
		while (readdir(d))
			++open_now;
		closedir(d);
	}
	const uint64_t reserve = 32 + 8 * uint64_t{workers};
	const uint64_t limit = nofile.rlim_cur;
	if (limit <= open_now + reserve)
		return 1;
	return std::max<uint64_t>(1, (limit - open_now - reserve) / 2 / workers);
}

} // namespace

int open_listener(const config::HostPort &endpoint, bool transparent, bool share)
{
	Bound b = bind_socket(endpoint, transparent, share);
	if (b.fd < 0)
		throw bind_error(endpoint, b.err, share);
	const int fd = b.fd;
	if (::listen(fd, 4096) != 0) {
		int err = errno;
		::close(fd);
		throw errno_error("listen", err, endpoint.text());
	}
	return fd;
}

Server::Server(config::Config config, std::function<config::Config()> reload, std::string bpffs)
	: config_(std::make_shared<const config::Config>(std::move(config))), reload_(std::move(reload)),
	  bpffs_(std::move(bpffs)), blocker_(bpf::Blocker::for_bpffs(bpffs_, block_policy(config_->fw))),
	  scripts_(config_->programs)
{
}

Server::~Server()
{
	for (auto &w : workers_)
		w->stop();
	for (auto &t : threads_)
		if (t.joinable())
			t.join();
	admin_.reset();
	// The mint threads end before the workers whose executors they resume.
	if (tls_ && tls_->terminates())
		tls_->lookup().shutdown();
	workers_.clear();
	if (log_fd_ > STDERR_FILENO)
		::close(log_fd_);
}

// Tunnels are spliced by the kernel when the family is loaded; it is opened
// once and shared by every worker. Without it they are copied, which is said
// here rather than per tunnel.
void Server::open_splice(const std::string &what)
{
	bpf::SpliceOpen opened = bpf::open_splice(bpf::Bpffs(bpffs_), false);
	splice_ = std::move(opened.splice);
	if (splice_)
		log::info(what + ": spliced by the kernel (the splice family under " + bpffs_ + ")");
	else
		log::info(what + ": copied in userspace: " + opened.unavailable);
}

void Server::record_legs(const std::string &what)
{
	const bpf::Bpffs fs(bpffs_);
	if (accel_ && accel_->stale(fs)) {
		log::info(what + ": the accel family was unloaded or replaced since it was opened");
		accel_.reset();
	}
	if (!accel_) {
		std::string unavailable;
		accel_ = bpf::AccelProxy::open(fs, unavailable);
		if (!accel_) {
			log::debug(what + ": listeners not recorded for `accel enable scope proxy`: " + unavailable);
			return;
		}
	}
	std::vector<sockaddr_storage> addrs;
	for (const auto &[key, ss] : bound_)
		addrs.push_back(ss);
	try {
		accel_->record(addrs);
		log::info(what + ": " + std::to_string(addrs.size()) +
			  " listener(s) recorded as proxy legs for `sonic accel enable scope proxy`");
	} catch (const std::exception &e) {
		log::warn(what + ": " + e.what());
	}
}

// What each new listener is bound to, from its first worker's socket.
static void note_bound(std::map<std::string, sockaddr_storage> &bound, const std::map<std::string, std::vector<int>> &fds)
{
	for (const auto &[key, list] : fds) {
		sockaddr_storage ss{};
		socklen_t len = sizeof(ss);
		if (!list.empty() && getsockname(list.front(), reinterpret_cast<sockaddr *>(&ss), &len) == 0)
			bound[key] = ss;
	}
}

void Server::start()
{
	// Every client and upstream connection is a descriptor: take all the
	// hard limit allows, as a proxy holding many idle clients must.
	struct rlimit nofile{};
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	const unsigned n = config_->worker_count();
	auto fds = open_listeners(*config_, n, {});
	int admin_fd = -1;
	try {
		if (config_->admin.enabled) {
			if (!config_->admin.reuse_port)
				check_unclaimed(config_->admin.listen, false);
			admin_fd = open_listener(config_->admin.listen, false, true);
		}
		log_fd_ = open_log(config_->access_log);
	} catch (...) {
		close_all(fds);
		if (admin_fd >= 0)
			::close(admin_fd);
		throw;
	}

	if (config_->tunnels.splice)
		open_splice("tunnels");
	note_bound(bound_, fds);
	record_legs("accel");

	// Every thread started from here on inherits the blocked signals, so only
	// wait() receives them.
	sigset_t set;
	sigemptyset(&set);
	for (int sig : {SIGHUP, SIGTERM, SIGINT})
		sigaddset(&set, sig);
	pthread_sigmask(SIG_BLOCK, &set, nullptr);
	std::signal(SIGPIPE, SIG_IGN);

	limits_ = std::make_shared<ClientLimits>();
	open_tls(*config_);
	const uint64_t share = descriptor_share(n);
	if (share != UINT64_MAX)
		log::debug("each worker takes up to " + std::to_string(share) +
			   " client connections at once (RLIMIT_NOFILE, half kept for upstream connections)");
	for (unsigned i = 0; i < n; ++i) {
		auto w = std::make_unique<Worker>(i, config_, log_fd_, splice_, limits_);
		w->set_accel(accel_);
		w->set_blocker(blocker_);
		w->set_tls(tls_);
		w->set_capacity(n, share);
		for (const config::Listener &l : config_->listeners)
			w->add_listener(fds[l.address.text()][i], l);
		workers_.push_back(std::move(w));
	}
	if (admin_fd >= 0) {
		std::vector<const Metrics *> metrics;
		for (auto &w : workers_)
			metrics.push_back(&w->metrics());
		admin_ = std::make_unique<Admin>(
			admin_fd, metrics,
			[this] {
				ServerFacts f;
				f.reloads = reloads_.load();
				f.reload_errors = reload_errors_.load();
				f.draining = draining_.load();
				f.workers = static_cast<unsigned>(workers_.size());
				f.fw = fw_metrics(bpffs_);
				std::lock_guard<std::mutex> lock(scripts_mu_);
				f.scripts = scripts_;
				return f;
			},
			[b = blocker_](const asio::ip::address &peer) { protect_peer(*b, peer); });
		admin_->start();
	}
	for (auto &w : workers_)
		threads_.emplace_back([w = w.get()] { w->run(); });
	// Every listener is bound and listening: a service manager waiting
	// (sonic.service, Type=notify) may start what depends on sonic.
	sys::notify("READY=1\nMAINPID=" + std::to_string(getpid()) + "\nSTATUS=" + status());
}

std::string Server::status() const
{
	std::string s = "listening on";
	const char *sep = " ";
	for (const config::Listener &l : config_->listeners) {
		s += sep + l.address.text() + " (" + config::mode_name(l.mode) + ")";
		sep = ", ";
	}
	s += "; " + std::to_string(workers_.size()) + " workers; " + std::to_string(reloads_.load()) + " reloads";
	if (reload_errors_.load())
		s += ", " + std::to_string(reload_errors_.load()) + " refused";
	return s;
}

void Server::reload()
{
	std::shared_ptr<const config::Config> next;
	std::map<std::string, std::vector<int>> fds;
	try {
		next = std::make_shared<const config::Config>(reload_());
		std::set<std::string> open;
		for (const config::Listener &l : config_->listeners)
			open.insert(l.address.text());
		fds = open_listeners(*next, workers(), open);
		open_tls(*next);
	} catch (const std::exception &e) {
		++reload_errors_;
		log::error(std::string("reload: ") + e.what() + "; the running configuration stays");
		return;
	}
	// A family loaded (or splicing turned on) since start is taken up here;
	// each worker gets it with the new configuration, on its own thread, for
	// the tunnels it opens next.
	if (next->tunnels.splice && !splice_)
		open_splice("reload: tunnels");
	std::set<std::string> wanted;
	for (const config::Listener &l : next->listeners)
		wanted.insert(l.address.text());
	std::erase_if(bound_, [&](const auto &kv) { return !wanted.count(kv.first); });
	note_bound(bound_, fds);
	record_legs("reload: accel");
	blocker_->set_policy(block_policy(next->fw));
	if (next->worker_count() != workers() && next->workers != 0)
		log::warn("reload: a new number of workers takes effect on restart");
	if (next->admin.enabled != config_->admin.enabled || !(next->admin.listen == config_->admin.listen))
		log::warn("reload: admin listener changes take effect on restart");
	// The access log file is opened again (after logrotate moved it) and
	// put in place of the old descriptor, which every worker writes to.
	if (log_fd_ > STDERR_FILENO && next->access_log.enabled && next->access_log.path != "-") {
		try {
			int fd = open_log(next->access_log);
			::dup2(fd, log_fd_);
			::close(fd);
		} catch (const std::exception &e) {
			log::warn(std::string("reload: ") + e.what());
		}
	}
	for (unsigned i = 0; i < workers(); ++i) {
		std::map<std::string, int> mine;
		for (auto &[key, list] : fds)
			mine[key] = list[i];
		Worker *w = workers_[i].get();
		asio::post(w->context(), [w, next, mine, s = splice_, a = accel_, t = tls_] {
			w->set_splice(s);
			w->set_tls(t);
			w->set_accel(a);
			w->apply(next, mine);
		});
	}
	config_ = next;
	{
		std::lock_guard<std::mutex> lock(scripts_mu_);
		scripts_ = next->programs;
	}
	++reloads_;
	log::info("reload: configuration from " + next->source + " in use");
}

void Server::open_tls(const config::Config &c)
{
	const bool terminate = c.tls.needed(c.listeners);
	if (tls_) {
		if (terminate && !tls_->terminates())
			throw usage_error("reload", "TLS interception is new in this configuration: it takes effect on "
						    "restart (sonic loads the CA at start)");
		return;
	}
	if (!terminate) {
		if (std::any_of(c.upstreams.begin(), c.upstreams.end(), [](const auto &u) { return u.tls; }))
			tls_ = std::make_shared<TlsContext>(nullptr, c.tls.upstream_ca); // HTTPS origins, no CA
		return;
	}
	// The CA, the leaf cache and the settings sonic cert uses: the leaves
	// minted here are the ones `sonic cert list` shows.
	std::shared_ptr<const tls::Ca> ca = tls::Ca::load(c.tls.state_dir);
	tls::StoreOptions options;
	options.dir = tls::StatePaths(c.tls.state_dir).certs_dir;
	options.thread_nice = 10; // below the workers, as the mint threads
	auto store = std::make_shared<tls::CertStore>(ca, options);
	tls_ = std::make_shared<TlsContext>(store, c.tls.upstream_ca);
	log::info("tls: leaves from the CA in " + tls::StatePaths(c.tls.state_dir).ca_file + ", cached in " + options.dir);
}

uint64_t Server::active_connections() const
{
	uint64_t n = 0;
	for (auto &w : workers_)
		n += w->metrics().connections_active.get();
	return n;
}

void Server::drain()
{
	draining_ = true;
	for (auto &w : workers_) {
		Worker *p = w.get();
		asio::post(p->context(), [p] { p->drain(); });
	}
	auto until = std::chrono::steady_clock::now() + config_->timeouts.drain;
	while (active_connections() > 0 && std::chrono::steady_clock::now() < until)
		std::this_thread::sleep_for(std::chrono::milliseconds(20));
	if (uint64_t left = active_connections())
		log::warn("drain: " + std::to_string(left) + " connections still open after " +
			  std::to_string(config_->timeouts.drain.count()) + " ms are closed");
	for (auto &w : workers_)
		w->stop();
	for (auto &t : threads_)
		t.join();
	threads_.clear();
}

void Server::wait()
{
	sigset_t set;
	sigemptyset(&set);
	for (int sig : {SIGHUP, SIGTERM, SIGINT})
		sigaddset(&set, sig);
	for (;;) {
		int sig = 0;
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			// The service manager waits for READY=1 after RELOADING=1
			// (ExecReload of sonic.service), even when the reload failed
			// and the running configuration stays.
			sys::notify(sys::reloading_state());
			reload();
			sys::notify("READY=1\nSTATUS=" + status());
			continue;
		}
		log::info(std::string("drain: ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") + " received, finishing requests");
		sys::notify("STOPPING=1");
		drain();
		return;
	}
}

} // namespace sonic::proxy
