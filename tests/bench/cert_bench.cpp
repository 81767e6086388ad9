// Times the certificate store the way the proxy uses it, and prints one
// JSON object (tests/bench/certs.sh makes the table).
//
//   sonic_cert_bench [--names N] [--policy per-leaf|shared] [--key-pool K] [--memory] [--threads T]
//                    [--ca-key ecdsa-p256|rsa-2048|rsa-4096]
//
// mint_*: CertStore::get() for N names never seen, as a handshake waits
// for it (a pooled or fresh key unless shared, building and signing; the
// leaf file is written in the background unless --memory); mint_total_ms
// also waits for every file to be on disk (flush);
// cached_*: get() and get_for_sni() of names already in memory, round-robin
// over the N names, on one thread and then on T threads at once.
#include "tls/ca.hpp"
#include "tls/store.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

using namespace sonic::tls;
using Clock = std::chrono::steady_clock;

namespace {

double percentile(std::vector<double> v, double p)
{
	std::sort(v.begin(), v.end());
	size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
	return v[i];
}

double elapsed_us(Clock::time_point a, Clock::time_point b)
{
	return std::chrono::duration<double, std::micro>(b - a).count();
}

} // namespace

int main(int argc, char **argv)
{
	size_t count = 1000;
	size_t pool = StoreOptions().key_pool;
	CaOptions ca_options;
	bool memory = false;
	unsigned threads = std::max(2u, std::thread::hardware_concurrency());
	LeafKeyPolicy policy = LeafKeyPolicy::PerLeaf;
	for (int i = 1; i < argc; ++i) {
		std::string a = argv[i];
		if (a == "--names" && i + 1 < argc)
			count = std::stoul(argv[++i]);
		else if (a == "--threads" && i + 1 < argc)
			threads = static_cast<unsigned>(std::stoul(argv[++i]));
		else if (a == "--policy" && i + 1 < argc)
			policy = std::string(argv[++i]) == "shared" ? LeafKeyPolicy::Shared : LeafKeyPolicy::PerLeaf;
		else if (a == "--key-pool" && i + 1 < argc)
			pool = std::stoul(argv[++i]);
		else if (a == "--ca-key" && i + 1 < argc && parse_key_type(argv[i + 1]))
			ca_options.key_type = *parse_key_type(argv[++i]);
		else if (a == "--memory")
			memory = true;
		else {
			std::cerr << "usage: sonic_cert_bench [--names N] [--policy per-leaf|shared] [--key-pool K] [--memory] "
				     "[--threads T] [--ca-key TYPE]\n";
			return 1;
		}
	}

	char tmpl[] = "/tmp/sonic-cert-bench-XXXXXX";
	std::string state = mkdtemp(tmpl);
	auto ca = Ca::generate(ca_options);
	StoreOptions options;
	options.key_policy = policy;
	options.capacity = count * 2;
	options.key_pool = pool;
	if (!memory)
		options.dir = state + "/certs";
	CertStore store(ca, options);

	std::vector<std::string> names;
	for (size_t i = 0; i < count; ++i)
		names.push_back("host" + std::to_string(i) + ".bench.example");

	// Warm up GnuTLS (first-use initialisation) on a name outside the set,
	// and let the key pool fill as it would in a running proxy.
	store.get("warmup.bench.example");
	store.flush();
	std::this_thread::sleep_for(std::chrono::milliseconds(50));

	std::vector<double> mint_us;
	auto total_start = Clock::now();
	for (const std::string &name : names) {
		auto t0 = Clock::now();
		auto leaf = store.get(name);
		mint_us.push_back(elapsed_us(t0, Clock::now()));
	}
	store.flush();
	double total_ms = elapsed_us(total_start, Clock::now()) / 1000;

	const size_t rounds = std::max<size_t>(1, 2000000 / count);
	auto cached = [&](bool sni) {
		auto t0 = Clock::now();
		size_t n = 0;
		for (size_t r = 0; r < rounds; ++r)
			for (const std::string &name : names) {
				auto leaf = sni ? store.get_for_sni(name) : store.get(name);
				n += leaf->chain_length();
			}
		double ns = elapsed_us(t0, Clock::now()) * 1000 / static_cast<double>(rounds * count);
		if (n == 0)
			std::abort();
		return ns;
	};
	double cached_ns = cached(false);
	double cached_sni_ns = cached(true);

	// Every thread looks up every name, each from its own offset.
	std::vector<std::thread> workers;
	auto mt_start = Clock::now();
	for (unsigned t = 0; t < threads; ++t)
		workers.emplace_back([&, t] {
			for (size_t r = 0; r < rounds; ++r)
				for (size_t i = 0; i < count; ++i)
					store.get(names[(i + t * 97) % count]);
		});
	for (auto &t : workers)
		t.join();
	double mt_ns = elapsed_us(mt_start, Clock::now()) * 1000 / static_cast<double>(rounds * count);

	StoreStats s = store.stats();
	nlohmann::ordered_json out = {
		{"ca_key", key_type_name(ca_options.key_type)},
		{"policy", policy == LeafKeyPolicy::Shared ? "shared" : "per-leaf"},
		{"key_pool", policy == LeafKeyPolicy::Shared ? 0 : pool},
		{"persisted", !memory},
		{"names", count},
		{"mints", s.mints},
		{"mint_median_us", percentile(mint_us, 0.5)},
		{"mint_p99_us", percentile(mint_us, 0.99)},
		{"mint_total_ms", total_ms},
		{"cached_ns", cached_ns},
		{"cached_sni_ns", cached_sni_ns},
		{"threads", threads},
		{"cached_parallel_ns_per_lookup_per_thread", mt_ns},
	};
	std::cout << out.dump() << std::endl;
	std::filesystem::remove_all(state);
	return s.mints == count + 1 ? 0 : 1;
}
