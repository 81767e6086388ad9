// The certificate store the proxy asks for a leaf per TLS handshake.
//
// Memory: N shards, each a hash map and an LRU list under its own mutex;
// capacity is split evenly between shards. A hit hashes the name, takes
// one shard lock, moves the entry to the front of the LRU (unless it is in
// the front half already) and copies a shared_ptr to an immutable Leaf: no
// allocation, no system call.
//
// Misses are single-flight: the first thread to miss a name loads it from
// the cache directory or mints it, while other threads asking for that
// name wait for its result; a name is minted once however many threads
// ask at once. A failure reaches every waiter and is not cached.
//
// Persistence is asynchronous: a new leaf is served at once and its file
// written by a background thread, so no handshake waits for the disk
// (creating a file costs more than minting on some filesystems). flush()
// waits for the writes and reports the first that failed.
//
// Under the per-leaf key policy a background thread keeps a small pool of
// fresh keys, so a mint usually only builds and signs (key generation is
// a third of a mint); when a burst empties the pool, mints generate their
// own key.
//
// Renewal: a leaf inside its renewal window (the last third of its
// validity by default) is replaced on the next lookup; while that one
// thread mints, the others keep getting the old leaf (it is still valid).
// A leaf on disk issued by another CA, expired, or corrupt is minted anew
// (corrupt: with a warning).
#pragma once

#include "tls/ca.hpp"
#include "tls/leaf.hpp"
#include "tls/leaf_dir.hpp"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::tls {

// Whose key a new leaf gets. PerLeaf (the default): a fresh ECDSA P-256
// key per leaf, stored in its file. Shared: one ECDSA P-256 key for every
// leaf (<dir>/.leaf-key.pem), as mitmproxy does, which saves the key
// generation (about a third of a mint). See sonic-cert(8).
enum class LeafKeyPolicy { PerLeaf, Shared };

struct StoreOptions {
	std::string dir;              // the leaf cache directory; empty: memory only
	size_t capacity = 10000;      // leaves kept in memory
	size_t shards = 64;           // independent locks
	int days = kDefaultLeafDays;  // validity of minted leaves
	int64_t renew_before = 0;     // seconds before the end to renew; 0: a third of the validity
	LeafKeyPolicy key_policy = LeafKeyPolicy::PerLeaf;
	size_t key_pool = 32;         // fresh keys kept ready (per-leaf policy); 0: none
	// Log a warning when writing a leaf file fails (callers that flush()
	// and report the error themselves turn it off).
	bool warn_write_errors = true;
	// Nice value for the store's own threads (the key pool, the writer):
	// a proxy runs them below its workers. 0: as the creating thread.
	int thread_nice = 0;
	// Unix time in seconds; the real clock when empty (tests move it).
	std::function<int64_t()> clock;
};

enum class LeafSource { Memory, Disk, Minted };
const char *leaf_source_name(LeafSource source);

struct Fetched {
	std::shared_ptr<const Leaf> leaf;
	LeafSource source = LeafSource::Memory;
};

struct StoreStats {
	uint64_t hits = 0, misses = 0, waits = 0, disk_loads = 0, mints = 0, evictions = 0, write_errors = 0;
	size_t size = 0;
};

class CertStore {
public:
	CertStore(std::shared_ptr<const Ca> ca, StoreOptions options);
	~CertStore();
	CertStore(const CertStore &) = delete;
	CertStore &operator=(const CertStore &) = delete;

	// The leaf for exactly NAME (any case, a trailing dot, an IDN, a
	// bracketed IPv6 address), minted when needed. Throws usage_error for
	// an invalid name, Error when minting or writing fails.
	std::shared_ptr<const Leaf> get(std::string_view name) { return find(name, false).leaf; }
	Fetched fetch(std::string_view name) { return find(name, false); }

	// The leaf to serve for a ClientHello's SNI. Policy: the name's own
	// leaf when one exists (memory or disk); otherwise a wildcard leaf one
	// level up (*.example.com for a.example.com) when one exists, since it
	// covers the name; otherwise a new leaf for exactly the name. sonic
	// never mints a wildcard by itself: wildcards are the operator's
	// (`sonic cert mint '*.example.com'`). The choice is remembered under
	// the name until the leaf chosen is due for renewal.
	std::shared_ptr<const Leaf> get_for_sni(std::string_view sni) { return find(sni, true).leaf; }
	Fetched fetch_for_sni(std::string_view sni) { return find(sni, true); }

	// The leaf get_for_sni() would serve when it is in memory already, or
	// null: never loads, mints or waits, so an event loop may call it (a
	// miss goes to fetch_for_sni() on another thread). Null for an invalid
	// name too (fetch_for_sni() then says why).
	std::shared_ptr<const Leaf> cached_for_sni(std::string_view sni);

	// The leaf for SNI that also names every one of ALSO (the origin's
	// certificate's names): the one fetch_for_sni() gives when it does,
	// else a leaf for SNI with ALSO added to its SAN, minted and put in its
	// place (memory and disk). Names of ALSO that are not valid leaf names
	// are left out; at most kMaxExtraNames are taken.
	Fetched fetch_covering(std::string_view sni, const std::vector<std::string> &also);
	static constexpr size_t kMaxExtraNames = 100;
	// Whether LEAF names every one of ALSO (as fetch_covering() takes them).
	static bool covers(const Leaf &leaf, const std::vector<std::string> &also);

	// Waits until every leaf minted so far is on disk; throws the first
	// write error since the last flush.
	void flush();

	// Drops NAME (canonical) from memory; true when it was there.
	bool forget(std::string_view name);
	void clear();

	StoreStats stats() const;
	const std::shared_ptr<const Ca> &ca() const { return ca_; }
	const StoreOptions &options() const { return options_; }

private:
	struct Entry;
	struct Flight;
	struct Shard;
	struct Writer;
	struct KeyPool;

	static bool serves(const Entry &e, int64_t now, bool sni);
	Fetched find(std::string_view input, bool sni);
	std::shared_ptr<const Leaf> lookup(std::string_view key, int64_t now, bool sni);
	Fetched fly(const HostName &name, int64_t now, bool sni);
	Fetched produce(const HostName &name, int64_t now, bool sni);
	// The fresh leaf of NAME in the cache directory; FOUND tells whether
	// there was a file at all.
	std::shared_ptr<const Leaf> load(const HostName &name, int64_t now, bool &found) const;
	Shard &shard_of(size_t hash) const;
	int64_t now() const;
	int64_t renew_at(const Leaf &leaf) const;
	void link_front(Shard &shard, Entry *entry);
	void touch(Shard &shard, Entry *entry);
	void unlink(Shard &shard, Entry *entry);
	void evict(Shard &shard);

	std::shared_ptr<const Ca> ca_;
	StoreOptions options_;
	std::optional<LeafDir> disk_;
	std::shared_ptr<const LeafKey> shared_key_;
	size_t per_shard_ = 1;
	std::unique_ptr<Shard[]> shards_;
	std::unique_ptr<KeyPool> key_pool_;
	std::unique_ptr<Writer> writer_;
};

} // namespace sonic::tls
