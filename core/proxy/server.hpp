// sonic run: the workers, the admin listener and the signals. The main
// thread only waits for signals: SIGHUP reloads the configuration (new
// listeners and routes for new connections, none dropped), SIGTERM/SIGINT
// stop accepting and drain the requests in flight.
#pragma once

#include "config/config.hpp"

#include <atomic>
#include <sys/socket.h>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace sonic::bpf {
class Splice;
class AccelProxy;
class Blocker;
}

namespace sonic::proxy {

class Worker;
class Admin;
class ClientLimits;
class TlsContext;

class Server {
public:
	// RELOAD reads the configuration again on SIGHUP; it throws on a bad one.
	// BPFFS is where the splice family is looked for ([tunnels] splice), and
	// the accel family this proxy records its listeners in (scope proxy).
	Server(config::Config config, std::function<config::Config()> reload, std::string bpffs);
	~Server();
	Server(const Server &) = delete;
	Server &operator=(const Server &) = delete;

	// Opens every listening socket and starts the workers. Throws an
	// environment error (exit 3) when an address is not allowed, or is in use
	// by another process and its listener does not set reuse_port.
	void start();
	// Serves until SIGTERM or SIGINT, then drains (bounded by
	// timeouts.drain) and returns.
	void wait();

	const config::Config &config() const { return *config_; }
	// What scripts block addresses through: the fw blocklist under the
	// bpffs root, with [fw]'s policy; the admin listener's peers are never
	// blocked.
	std::shared_ptr<bpf::Blocker> blocker() const { return blocker_; }
	unsigned workers() const { return static_cast<unsigned>(workers_.size()); }

private:
	void reload();
	void drain();
	// One line for the service manager (STATUS=): listeners, workers, reloads.
	std::string status() const;
	// Opens the splice family into splice_; says which way tunnels go.
	void open_splice(const std::string &what);
	// Records the listeners in the accel family for scope proxy, opening it
	// first if it was not open (it may have been loaded since start) or is
	// not the one loaded now.
	void record_legs(const std::string &what);
	uint64_t active_connections() const;
	// The CA, leaf store and TLS settings, made once when a configuration
	// first asks for interception (the state directory's CA must exist).
	void open_tls(const config::Config &c);

	std::shared_ptr<const config::Config> config_;
	std::function<config::Config()> reload_;
	std::string bpffs_;
	std::shared_ptr<const bpf::Splice> splice_; // opened at start or a reload, or null
	std::shared_ptr<bpf::AccelProxy> accel_; // null: the accel family is not loaded
	std::shared_ptr<bpf::Blocker> blocker_;
	// The scripts in use, for /metrics (read on the admin thread).
	std::mutex scripts_mu_;
	std::vector<std::shared_ptr<const js::Program>> scripts_;
	std::map<std::string, sockaddr_storage> bound_; // listener address -> what it is bound to
	std::shared_ptr<ClientLimits> limits_;
	std::shared_ptr<TlsContext> tls_;
	std::vector<std::unique_ptr<Worker>> workers_;
	std::vector<std::thread> threads_;
	std::unique_ptr<Admin> admin_;
	int log_fd_ = -1;
	std::atomic<uint64_t> reloads_{0};
	std::atomic<uint64_t> reload_errors_{0};
	std::atomic<bool> draining_{false};
};

// A listening socket for ENDPOINT; with SHARE it sets SO_REUSEPORT, so that
// each worker can have its own. Throws a sonic error naming the address
// (and, when it is in use, the processes that hold it).
int open_listener(const config::HostPort &endpoint, bool transparent, bool share);

} // namespace sonic::proxy
