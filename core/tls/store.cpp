#include "tls/store.hpp"

#include "out/error.hpp"
#include "out/log.hpp"

#include <cstring>
#include <ctime>
#include <future>
#include <mutex>
#include <unordered_map>

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
	int64_t renew_at = 0;
	int64_t expires_at = 0;
	std::shared_ptr<Flight> flight; // set while a thread loads or mints
	Entry *prev = nullptr, *next = nullptr; // LRU links, set while linked
};

struct alignas(64) CertStore::Shard {
	std::mutex mutex;
	// Keys view Entry::key, which lives as long as the entry.
	std::unordered_map<std::string_view, std::unique_ptr<Entry>, NameHash> map;
	Entry lru; // sentinel: lru.next is the most recently used
	size_t linked = 0;
	StoreStats stats;

	Shard() { lru.prev = lru.next = &lru; }
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
	} else if (shared) {
		shared_key_ = LeafKey::generate();
	}
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
	return e.leaf && now < e.renew_at && now >= e.leaf->not_before() && (sni || e.leaf->name() == e.key);
}

std::shared_ptr<const Leaf> CertStore::lookup(std::string_view key, int64_t now, bool sni)
{
	Shard &shard = shard_of(name_hash(key));
	std::lock_guard<std::mutex> lock(shard.mutex);
	auto it = shard.map.find(key);
	if (it == shard.map.end() || !serves(*it->second, now, sni))
		return nullptr;
	Entry *e = it->second.get();
	if (shard.lru.next != e) {
		unlink(shard, e);
		link_front(shard, e);
	}
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
			if (e->leaf && t < e->expires_at && t >= e->leaf->not_before() &&
			    (sni || e->leaf->name() == e->key)) {
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
				e->renew_at = renew_at(*got.leaf);
				e->expires_at = got.leaf->not_after();
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
	auto key = options_.key_policy == LeafKeyPolicy::Shared ? shared_key_ : nullptr;
	auto leaf = Leaf::mint(ca_, name, options_.days, std::move(key), t);
	if (disk_)
		disk_->write(*leaf);
	return {std::move(leaf), LeafSource::Minted};
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
	return total;
}

} // namespace sonic::tls
