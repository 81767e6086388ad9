#include "tls/store.hpp"

#include "out/error.hpp"
#include "out/log.hpp"

#include <algorithm>
#include <sys/resource.h>
#include <unistd.h>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

namespace sonic::tls {

namespace {

// Seeded per process, so which names collide cannot be worked out from
// outside (SNI comes from clients).
const uint64_t kHashSeed = [] {
	uint64_t seed = 0;
	random_bytes(&seed, sizeof(seed));
	return seed;
}();

// A short-string hash, 8 bytes per step.
uint64_t name_hash(std::string_view s)
{
	uint64_t h = kHashSeed ^ (s.size() * 0x9e3779b97f4a7c15ULL);
	size_t i = 0;
	for (; i + 8 <= s.size(); i += 8) {
		uint64_t w;
		std::memcpy(&w, s.data() + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	uint64_t w = 0;
	std::memcpy(&w, s.data() + i, s.size() - i);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 29;
	return h;
}

struct NameHash {
	size_t operator()(std::string_view s) const { return name_hash(s); }
};

int64_t coarse_now()
{
	timespec ts{};
	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return ts.tv_sec;
}

} // namespace

const char *leaf_source_name(LeafSource source)
{
	switch (source) {
	case LeafSource::Memory:
		return "memory";
	case LeafSource::Disk:
		return "disk";
	case LeafSource::Minted:
		return "minted";
	}
	return "memory";
}

struct CertStore::Flight {
	std::promise<Fetched> promise;
	std::shared_future<Fetched> result = promise.get_future().share();
};

struct CertStore::Entry {
	std::string key;
	std::shared_ptr<const Leaf> leaf; // null until the first flight lands
	// Copied from the leaf so a hit reads only this entry.
	int64_t not_before = 0, renew_at = 0, expires_at = 0;
	bool own = false; // the leaf is the key's own, not a covering wildcard
	uint64_t stamp = 0; // the shard's tick when last moved to the front
	std::shared_ptr<Flight> flight; // set while a thread loads or mints
	Entry *prev = nullptr, *next = nullptr; // LRU links, set while linked
};

struct alignas(64) CertStore::Shard {
	std::mutex mutex;
	// Keys view Entry::key, which lives as long as the entry.
	std::unordered_map<std::string_view, std::unique_ptr<Entry>, NameHash> map;
	Entry lru; // sentinel: lru.next is the most recently used
	size_t linked = 0;
	uint64_t tick = 0; // moves to the front so far
	StoreStats stats;

	Shard() { lru.prev = lru.next = &lru; }
};

// Writes leaf files in the background, in the order they were minted.
namespace {

// The calling thread's nice value raised by NICE (0: unchanged).
void lower_priority(int nice)
{
	if (nice > 0)
		setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice);
}

} // namespace

struct CertStore::Writer {
	const LeafDir &dir;
	bool warn;
	std::mutex mutex;
	std::condition_variable work, idle;
	std::deque<std::shared_ptr<const Leaf>> queue;
	bool busy = false, stop = false;
	std::exception_ptr error;
	uint64_t errors = 0;
	int64_t last_warning = 0;
	std::thread thread;

	Writer(const LeafDir &d, bool w, int nice)
		: dir(d), warn(w), thread([this, nice] {
			  lower_priority(nice);
			  run();
		  })
	{
	}

	~Writer()
	{
		{
			std::lock_guard<std::mutex> lock(mutex);
			stop = true;
		}
		work.notify_one();
		thread.join();
	}

	void push(std::shared_ptr<const Leaf> leaf)
	{
		{
			std::lock_guard<std::mutex> lock(mutex);
			queue.push_back(std::move(leaf));
		}
		work.notify_one();
	}

	void run()
	{
		std::unique_lock<std::mutex> lock(mutex);
		for (;;) {
			work.wait(lock, [this] { return stop || !queue.empty(); });
			if (queue.empty())
				return;
			std::shared_ptr<const Leaf> leaf = std::move(queue.front());
			queue.pop_front();
			busy = true;
			lock.unlock();
			std::exception_ptr failed;
			try {
				dir.write(*leaf);
			} catch (const Error &e) {
				failed = std::current_exception();
				// One warning a minute is enough to be noticed.
				if (warn && coarse_now() - last_warning >= 60) {
					last_warning = coarse_now();
					log::warn(std::string(e.what()) + ": the leaf is served from memory only");
				}
			}
			lock.lock();
			busy = false;
			if (failed) {
				++errors;
				if (!error)
					error = failed;
			}
			if (queue.empty())
				idle.notify_all();
		}
	}

	void flush()
	{
		std::unique_lock<std::mutex> lock(mutex);
		idle.wait(lock, [this] { return queue.empty() && !busy; });
		if (error)
			std::rethrow_exception(std::exchange(error, nullptr));
	}
};

// Fresh leaf keys made ahead of need by a background thread.
struct CertStore::KeyPool {
	size_t size;
	std::mutex mutex;
	std::condition_variable low;
	std::vector<std::shared_ptr<const LeafKey>> keys;
	bool stop = false;
	std::thread thread;

	KeyPool(size_t n, int nice)
		: size(n), thread([this, nice] {
			  lower_priority(nice);
			  run();
		  })
	{
	}

	~KeyPool()
	{
		{
			std::lock_guard<std::mutex> lock(mutex);
			stop = true;
		}
		low.notify_one();
		thread.join();
	}

	// A fresh key, or null when the pool is empty.
	std::shared_ptr<const LeafKey> take()
	{
		std::shared_ptr<const LeafKey> key;
		{
			std::lock_guard<std::mutex> lock(mutex);
			if (keys.empty())
				return nullptr;
			key = std::move(keys.back());
			keys.pop_back();
		}
		low.notify_one();
		return key;
	}

	void run()
	{
		std::unique_lock<std::mutex> lock(mutex);
		for (;;) {
			low.wait(lock, [this] { return stop || keys.size() < size; });
			if (stop)
				return;
			lock.unlock();
			std::shared_ptr<const LeafKey> key;
			try {
				key = LeafKey::generate();
			} catch (const Error &e) {
				// Mints then make their own key and report the failure.
				log::debug(std::string(e.what()) + ": leaf key pool stops");
				return;
			}
			lock.lock();
			keys.push_back(std::move(key));
		}
	}
};

CertStore::CertStore(std::shared_ptr<const Ca> ca, StoreOptions options)
	: ca_(std::move(ca)), options_(std::move(options))
{
	if (options_.shards == 0)
		options_.shards = 1;
	if (options_.capacity < options_.shards)
		options_.capacity = options_.shards;
	per_shard_ = (options_.capacity + options_.shards - 1) / options_.shards;
	shards_ = std::make_unique<Shard[]>(options_.shards);
	bool shared = options_.key_policy == LeafKeyPolicy::Shared;
	if (!options_.dir.empty()) {
		disk_.emplace(options_.dir);
		// Read even under the per-leaf policy, so leaves minted under the
		// shared one stay usable.
		shared_key_ = disk_->shared_key(shared);
		writer_ = std::make_unique<Writer>(*disk_, options_.warn_write_errors, options_.thread_nice);
	} else if (shared) {
		shared_key_ = LeafKey::generate();
	}
	if (!shared && options_.key_pool > 0)
		key_pool_ = std::make_unique<KeyPool>(options_.key_pool, options_.thread_nice);
}

CertStore::~CertStore() = default;

int64_t CertStore::now() const { return options_.clock ? options_.clock() : coarse_now(); }

int64_t CertStore::renew_at(const Leaf &leaf) const
{
	return renew_time(leaf.not_before(), leaf.not_after(), options_.renew_before);
}

CertStore::Shard &CertStore::shard_of(size_t hash) const
{
	return shards_[(hash >> 40) % options_.shards];
}

void CertStore::link_front(Shard &shard, Entry *e)
{
	e->prev = &shard.lru;
	e->next = shard.lru.next;
	shard.lru.next->prev = e;
	shard.lru.next = e;
	e->stamp = ++shard.tick;
	++shard.linked;
}

void CertStore::unlink(Shard &shard, Entry *e)
{
	if (!e->prev)
		return;
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = nullptr;
	--shard.linked;
}

void CertStore::evict(Shard &shard)
{
	while (shard.linked > per_shard_) {
		Entry *victim = shard.lru.prev;
		unlink(shard, victim);
		shard.map.erase(victim->key);
		++shard.stats.evictions;
	}
}

bool CertStore::serves(const Entry &e, int64_t now, bool sni)
{
	return e.leaf && now < e.renew_at && now >= e.not_before && (sni || e.own);
}

void CertStore::touch(Shard &shard, Entry *e)
{
	// Fewer moves to the front since e's own than half the shard's
	// capacity: e is in the front half already, and relinking it would
	// only write four more cache lines. The order stays LRU where it
	// decides anything, at the back.
	if (shard.tick - e->stamp < per_shard_ / 2)
		return;
	unlink(shard, e);
	link_front(shard, e);
}

std::shared_ptr<const Leaf> CertStore::lookup(std::string_view key, int64_t now, bool sni)
{
	Shard &shard = shard_of(name_hash(key));
	std::lock_guard<std::mutex> lock(shard.mutex);
	auto it = shard.map.find(key);
	if (it == shard.map.end() || !serves(*it->second, now, sni))
		return nullptr;
	Entry *e = it->second.get();
	touch(shard, e);
	++shard.stats.hits;
	return e->leaf;
}

Fetched CertStore::find(std::string_view input, bool sni)
{
	int64_t t = now();
	char buf[256];
	std::string_view key = quick_key(input, buf);
	if (!key.empty())
		if (auto leaf = lookup(key, t, sni))
			return {std::move(leaf), LeafSource::Memory};
	HostName name = parse_name(input);
	if (name.text != key)
		if (auto leaf = lookup(name.text, t, sni))
			return {std::move(leaf), LeafSource::Memory};
	return fly(name, t, sni);
}

std::shared_ptr<const Leaf> CertStore::cached_for_sni(std::string_view sni)
{
	int64_t t = now();
	char buf[256];
	std::string_view key = quick_key(sni, buf);
	if (key.empty())
		return nullptr;
	return lookup(key, t, true);
}

namespace {

// ALSO as leaf names: canonical, valid, at most kMaxExtraNames.
std::vector<HostName> extra_names(const std::vector<std::string> &also, size_t most)
{
	std::vector<HostName> out;
	for (const std::string &a : also) {
		if (out.size() >= most)
			break;
		try {
			out.push_back(parse_name(a));
		} catch (const Error &) {
			// not a name sonic mints (an origin's odd SAN): left out
		}
	}
	return out;
}

} // namespace

bool CertStore::covers(const Leaf &leaf, const std::vector<std::string> &also)
{
	const std::vector<HostName> want = extra_names(also, kMaxExtraNames);
	for (const HostName &n : want)
		if (std::find(leaf.names().begin(), leaf.names().end(), n.text) == leaf.names().end())
			return false;
	return true;
}

Fetched CertStore::fetch_covering(std::string_view sni, const std::vector<std::string> &also)
{
	Fetched f = find(sni, true);
	if (also.empty() || covers(*f.leaf, also))
		return f;
	const HostName name = parse_name(sni);
	const int64_t t = now();
	std::shared_ptr<const LeafKey> key = shared_key_;
	const bool own_key = options_.key_policy == LeafKeyPolicy::PerLeaf;
	if (own_key)
		key = key_pool_ ? key_pool_->take() : nullptr;
	auto leaf = Leaf::mint(ca_, name, options_.days, std::move(key), own_key, t, extra_names(also, kMaxExtraNames));
	Shard &shard = shard_of(name_hash(name.text));
	{
		std::lock_guard<std::mutex> lock(shard.mutex);
		auto it = shard.map.find(name.text);
		Entry *e = it == shard.map.end() ? nullptr : it->second.get();
		// An entry with a flight keeps it: that flight's leaf lands there.
		if (e && !e->flight) {
			e->leaf = leaf;
			e->not_before = leaf->not_before();
			e->renew_at = renew_at(*leaf);
			e->expires_at = leaf->not_after();
			e->own = true;
			unlink(shard, e);
			link_front(shard, e);
		}
		++shard.stats.mints;
	}
	if (writer_)
		writer_->push(leaf);
	return {std::move(leaf), LeafSource::Minted};
}

Fetched CertStore::fly(const HostName &name, int64_t t, bool sni)
{
	Shard &shard = shard_of(name_hash(name.text));
	std::shared_ptr<Flight> flight;
	for (;;) {
		std::unique_lock<std::mutex> lock(shard.mutex);
		auto it = shard.map.find(name.text);
		Entry *e = it == shard.map.end() ? nullptr : it->second.get();
		if (e && serves(*e, t, sni)) {
			++shard.stats.hits;
			return {e->leaf, LeafSource::Memory};
		}
		if (e && e->flight) {
			// Someone is loading or renewing it: a still valid old leaf
			// serves meanwhile, otherwise wait for theirs.
			if (e->leaf && t < e->expires_at && t >= e->not_before && (sni || e->own)) {
				++shard.stats.hits;
				return {e->leaf, LeafSource::Memory};
			}
			std::shared_future<Fetched> result = e->flight->result;
			++shard.stats.waits;
			lock.unlock();
			const Fetched &got = result.get();
			// An SNI flight may land on a wildcard leaf; an exact lookup
			// then goes on to mint the name's own.
			if (sni || got.leaf->name() == name.text)
				return got;
			continue;
		}
		if (!e) {
			auto owned = std::make_unique<Entry>();
			owned->key = name.text;
			e = owned.get();
			shard.map.emplace(std::string_view(e->key), std::move(owned));
		}
		flight = std::make_shared<Flight>();
		e->flight = flight;
		++shard.stats.misses;
		break;
	}

	Fetched got;
	std::exception_ptr error;
	try {
		got = produce(name, t, sni);
	} catch (...) {
		error = std::current_exception();
	}

	{
		std::lock_guard<std::mutex> lock(shard.mutex);
		auto it = shard.map.find(name.text);
		Entry *e = it == shard.map.end() ? nullptr : it->second.get();
		// Evicted or forgotten meanwhile: the result is still the caller's.
		if (e && e->flight == flight) {
			e->flight.reset();
			if (error) {
				if (!e->leaf)
					shard.map.erase(it);
			} else {
				e->leaf = got.leaf;
				e->not_before = got.leaf->not_before();
				e->renew_at = renew_at(*got.leaf);
				e->expires_at = got.leaf->not_after();
				e->own = got.leaf->name() == e->key;
				unlink(shard, e);
				link_front(shard, e);
				evict(shard);
			}
		}
		if (!error)
			++(got.source == LeafSource::Minted ? shard.stats.mints
			   : got.source == LeafSource::Disk ? shard.stats.disk_loads
							    : shard.stats.hits);
	}
	if (error) {
		flight->promise.set_exception(error);
		std::rethrow_exception(error);
	}
	flight->promise.set_value(got);
	return got;
}

std::shared_ptr<const Leaf> CertStore::load(const HostName &name, int64_t t, bool &found) const
{
	std::optional<std::string> text = disk_->read(name.text);
	found = text.has_value();
	if (!text)
		return nullptr;
	std::string path = disk_->path_of(name.text);
	try {
		auto leaf = Leaf::parse(ca_, *text, shared_key_, path);
		if (!leaf) {
			log::debug("replacing the leaf certificate of " + name.text + ": another CA issued it");
			return nullptr;
		}
		if (leaf->name() != name.text)
			throw kernel_error("read leaf certificate", "it is the leaf of " + leaf->name(), path);
		if (t < renew_at(*leaf) && t >= leaf->not_before())
			return leaf;
		log::debug("renewing the leaf certificate of " + name.text);
	} catch (const Error &e) {
		log::warn(std::string(e.what()) + ": minting a new one");
	}
	return nullptr;
}

Fetched CertStore::produce(const HostName &name, int64_t t, bool sni)
{
	bool own = false;
	if (disk_)
		if (auto leaf = load(name, t, own))
			return {std::move(leaf), LeafSource::Disk};
	if (sni && !own)
		if (auto wildcard = covering_wildcard(name)) {
			if (auto leaf = lookup(*wildcard, t, false))
				return {std::move(leaf), LeafSource::Memory};
			if (disk_ && disk_->has(*wildcard))
				return fly(parse_name(*wildcard), t, false);
		}
	std::shared_ptr<const LeafKey> key = shared_key_;
	bool own_key = options_.key_policy == LeafKeyPolicy::PerLeaf;
	if (own_key)
		key = key_pool_ ? key_pool_->take() : nullptr;
	auto leaf = Leaf::mint(ca_, name, options_.days, std::move(key), own_key, t);
	if (writer_)
		writer_->push(leaf);
	return {std::move(leaf), LeafSource::Minted};
}

void CertStore::flush()
{
	if (writer_)
		writer_->flush();
}

bool CertStore::forget(std::string_view name)
{
	Shard &shard = shard_of(name_hash(name));
	std::lock_guard<std::mutex> lock(shard.mutex);
	auto it = shard.map.find(name);
	if (it == shard.map.end() || !it->second->leaf)
		return false;
	unlink(shard, it->second.get());
	// An entry being renewed stays for its flight to land in.
	if (it->second->flight)
		it->second->leaf.reset();
	else
		shard.map.erase(it);
	return true;
}

void CertStore::clear()
{
	for (size_t i = 0; i < options_.shards; ++i) {
		Shard &shard = shards_[i];
		std::lock_guard<std::mutex> lock(shard.mutex);
		for (auto it = shard.map.begin(); it != shard.map.end();) {
			unlink(shard, it->second.get());
			if (it->second->flight) {
				it->second->leaf.reset();
				++it;
			} else {
				it = shard.map.erase(it);
			}
		}
	}
}

StoreStats CertStore::stats() const
{
	StoreStats total;
	for (size_t i = 0; i < options_.shards; ++i) {
		Shard &shard = shards_[i];
		std::lock_guard<std::mutex> lock(shard.mutex);
		total.hits += shard.stats.hits;
		total.misses += shard.stats.misses;
		total.waits += shard.stats.waits;
		total.disk_loads += shard.stats.disk_loads;
		total.mints += shard.stats.mints;
		total.evictions += shard.stats.evictions;
		total.size += shard.linked;
	}
	if (writer_) {
		std::lock_guard<std::mutex> lock(writer_->mutex);
		total.write_errors = writer_->errors;
	}
	return total;
}

} // namespace sonic::tls
