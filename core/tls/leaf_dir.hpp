// The leaf cache on disk: <state>/certs/<name>.pem (the certificate, then
// its key), 0600 in a 0700 directory, each written in one rename. It is a
// cache: a missing, torn or corrupt file costs a fresh mint, nothing more,
// so leaf files are not fsync'ed.
#pragma once

#include "tls/ca.hpp"
#include "tls/leaf.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sonic::tls {

// What a leaf file says, for listing and purging.
enum class LeafState {
	Valid,   // served as is
	Renew,   // inside its renewal window: the next lookup mints a new one
	Expired, // past its end
	OtherCa, // issued by another CA (the CA was replaced)
	Corrupt, // unreadable
};
const char *leaf_state_name(LeafState state);

struct LeafFile {
	std::string name; // the leaf's first SAN; the file name when corrupt
	std::string path;
	LeafState state = LeafState::Corrupt;
	std::vector<std::string> names;
	int64_t not_before = 0, not_after = 0;
	std::string fingerprint;
	std::string problem; // why it is corrupt
};

// When a leaf is renewed: a third of its validity before its end (as
// certbot does), or RENEW_BEFORE seconds before when that is set.
int64_t renew_time(int64_t not_before, int64_t not_after, int64_t renew_before);

class LeafDir {
public:
	explicit LeafDir(std::string dir) : dir_(std::move(dir)) {}
	const std::string &dir() const { return dir_; }

	// The file of a canonical NAME: <name>.pem, or <sha256 of name>.pem
	// for names too long for a file name (64 hex digits: no host name).
	std::string path_of(std::string_view name) const;
	bool has(std::string_view name) const;
	// The file's text; nullopt when it does not exist. Other failures
	// (EACCES) throw.
	std::optional<std::string> read(std::string_view name) const;
	// Writes LEAF's file, making the directory (0700) when missing.
	void write(const Leaf &leaf) const;
	bool remove(std::string_view name) const;
	// Removes every leaf file (and the shared key); returns the names of
	// the leaves removed (a long name's, whose file is named by its hash,
	// as its certificate names it).
	std::vector<std::string> remove_all() const;

	// Every leaf file, described against CA at NOW.
	std::vector<LeafFile> list(const Ca &ca, int64_t now, int64_t renew_before) const;
	// The leaf file of NAME, described; nullopt when there is none.
	std::optional<LeafFile> describe(std::string_view name, const Ca &ca, int64_t now, int64_t renew_before) const;

	// The key shared by leaves under the shared-key policy
	// (<dir>/.leaf-key.pem). Made when missing and CREATE is set; null when
	// missing otherwise.
	std::shared_ptr<const LeafKey> shared_key(bool create) const;

private:
	std::vector<std::string> leaf_paths() const;

	std::string dir_;
};

} // namespace sonic::tls
