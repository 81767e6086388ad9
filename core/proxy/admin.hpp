// The admin listener (off by default): GET /metrics (Prometheus text) and
// GET /healthz. It runs on its own thread and only reads the workers'
// counters.
#pragma once

#include "config/config.hpp"
#include "proxy/asio.hpp"
#include "proxy/metrics.hpp"

#include <functional>
#include <thread>
#include <vector>

namespace sonic::proxy {

class Admin {
public:
	// FD is the bound listening socket; FACTS is called per /metrics request,
	// ON_PEER with the address of each client it accepts.
	Admin(int fd, std::vector<const Metrics *> workers, std::function<ServerFacts()> facts,
	      std::function<void(const asio::ip::address &)> on_peer = {});
	~Admin();
	void start();

private:
	awaitable<void> accept_loop();
	awaitable<void> serve(tcp::socket sock);

	asio::io_context ctx_{1};
	tcp::acceptor acceptor_;
	std::vector<const Metrics *> workers_;
	std::function<ServerFacts()> facts_;
	std::function<void(const asio::ip::address &)> on_peer_;
	std::thread thread_;
};

} // namespace sonic::proxy
