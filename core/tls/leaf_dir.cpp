#include "tls/leaf_dir.hpp"

#include "out/error.hpp"
#include "out/log.hpp"
#include "sys/fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

namespace sonic::tls {

namespace {

constexpr size_t kMaxFileName = 255;
const char kSharedKeyFile[] = ".leaf-key.pem";
// A leaf file is a few kB; anything much bigger is not one.
constexpr size_t kMaxFileSize = 1 << 20;

bool is_leaf_file(const std::string &file)
{
	return file.size() > 4 && file[0] != '.' && file.compare(file.size() - 4, 4, ".pem") == 0;
}

std::string file_stem(const std::string &path)
{
	std::string file = path.substr(path.find_last_of('/') + 1);
	return file.substr(0, file.size() - 4);
}

// A file's text; nullopt when it does not exist.
std::optional<std::string> read_path(const std::string &path)
{
	int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return std::nullopt;
		throw errno_error("read", errno, path);
	}
	std::string text;
	char buf[8192];
	for (;;) {
		ssize_t n = ::read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int err = errno;
			close(fd);
			throw errno_error("read", err, path);
		}
		if (n == 0 || text.size() > kMaxFileSize)
			break;
		text.append(buf, static_cast<size_t>(n));
	}
	close(fd);
	return text;
}

// A file stem path_of() made from a long name: 64 lowercase hex digits, one
// label longer than a host name's labels can be.
bool is_hashed(const std::string &stem)
{
	return stem.size() == 64 &&
	       std::all_of(stem.begin(), stem.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// The name of the leaf in a hashed file: its first subject alternative name,
// or nullopt when the file is gone or unreadable.
std::optional<std::string> hashed_leaf_name(const std::string &path)
{
	try {
		std::optional<std::string> text = read_path(path);
		if (!text)
			return std::nullopt;
		Crt crt = import_crt(*text, GNUTLS_X509_FMT_PEM, path);
		std::vector<std::string> names = alt_names(crt.get());
		if (!names.empty())
			return names.front();
	} catch (const Error &) {
	}
	return std::nullopt;
}

LeafFile describe_text(const std::string &path, const std::string &text, const Ca &ca, int64_t now, int64_t renew_before)
{
	LeafFile f;
	f.path = path;
	f.name = file_stem(path);
	try {
		Crt crt = import_crt(text, GNUTLS_X509_FMT_PEM, path);
		f.names = alt_names(crt.get());
		if (f.names.empty())
			throw kernel_error("read leaf certificate", "it has no subject alternative name", path);
		f.name = f.names.front();
		f.not_before = gnutls_x509_crt_get_activation_time(crt.get());
		f.not_after = gnutls_x509_crt_get_expiration_time(crt.get());
		f.fingerprint = fingerprint_sha256(crt.get());
		if (authority_key_id(crt.get()) != ca.key_id())
			f.state = LeafState::OtherCa;
		else if (now >= f.not_after)
			f.state = LeafState::Expired;
		else if (now >= renew_time(f.not_before, f.not_after, renew_before) || now < f.not_before)
			f.state = LeafState::Renew;
		else
			f.state = LeafState::Valid;
	} catch (const Error &e) {
		f.state = LeafState::Corrupt;
		f.problem = e.reason();
	}
	return f;
}

} // namespace

const char *leaf_state_name(LeafState state)
{
	switch (state) {
	case LeafState::Valid:
		return "valid";
	case LeafState::Renew:
		return "renew";
	case LeafState::Expired:
		return "expired";
	case LeafState::OtherCa:
		return "other-ca";
	case LeafState::Corrupt:
		return "corrupt";
	}
	return "corrupt";
}

int64_t renew_time(int64_t not_before, int64_t not_after, int64_t renew_before)
{
	if (renew_before > 0)
		return not_after - renew_before;
	return not_after - (not_after - not_before) / 3;
}

std::string LeafDir::path_of(std::string_view name) const
{
	if (name.size() + 4 <= kMaxFileName)
		return dir_ + "/" + std::string(name) + ".pem";
	uint8_t digest[32];
	gnutls_hash_fast(GNUTLS_DIG_SHA256, name.data(), name.size(), digest);
	std::string file = hex(digest, sizeof(digest));
	std::transform(file.begin(), file.end(), file.begin(), [](char c) { return static_cast<char>(std::tolower(c)); });
	return dir_ + "/" + file + ".pem";
}

bool LeafDir::has(std::string_view name) const
{
	struct stat st {};
	return stat(path_of(name).c_str(), &st) == 0;
}

std::optional<std::string> LeafDir::read(std::string_view name) const { return read_path(path_of(name)); }

void LeafDir::write(const Leaf &leaf) const
{
	sys::make_dir(dir_, 0700);
	sys::write_file_atomic(path_of(leaf.name()), leaf.file_text(), 0600, false);
}

bool LeafDir::remove(std::string_view name) const
{
	std::string path = path_of(name);
	if (unlink(path.c_str()) == 0)
		return true;
	if (errno == ENOENT || errno == ENOTDIR)
		return false;
	throw errno_error("remove leaf certificate", errno, path);
}

std::vector<std::string> LeafDir::leaf_paths() const
{
	std::vector<std::string> paths;
	std::unique_ptr<DIR, int (*)(DIR *)> d(opendir(dir_.c_str()), closedir);
	if (!d) {
		if (errno == ENOENT || errno == ENOTDIR)
			return paths;
		throw errno_error("read certificate cache", errno, dir_);
	}
	while (dirent *e = readdir(d.get())) {
		std::string file = e->d_name;
		if (is_leaf_file(file))
			paths.push_back(dir_ + "/" + file);
	}
	std::sort(paths.begin(), paths.end());
	return paths;
}

std::vector<std::string> LeafDir::remove_all() const
{
	std::vector<std::string> removed;
	for (const std::string &path : leaf_paths()) {
		std::string name = file_stem(path);
		if (is_hashed(name))
			name = hashed_leaf_name(path).value_or(name);
		if (unlink(path.c_str()) == 0)
			removed.push_back(std::move(name));
		else if (errno != ENOENT)
			throw errno_error("remove leaf certificate", errno, path);
	}
	std::string key = dir_ + "/" + kSharedKeyFile;
	if (unlink(key.c_str()) != 0 && errno != ENOENT && errno != ENOTDIR)
		throw errno_error("remove shared leaf key", errno, key);
	return removed;
}

std::optional<LeafFile> LeafDir::describe(std::string_view name, const Ca &ca, int64_t now, int64_t renew_before) const
{
	std::string path = path_of(name);
	std::optional<std::string> text = read_path(path);
	if (!text)
		return std::nullopt;
	return describe_text(path, *text, ca, now, renew_before);
}

std::vector<LeafFile> LeafDir::list(const Ca &ca, int64_t now, int64_t renew_before) const
{
	std::vector<LeafFile> files;
	for (const std::string &path : leaf_paths()) {
		std::optional<std::string> text = read_path(path);
		if (!text)
			continue;
		files.push_back(describe_text(path, *text, ca, now, renew_before));
	}
	std::sort(files.begin(), files.end(), [](const LeafFile &a, const LeafFile &b) { return a.name < b.name; });
	return files;
}

std::shared_ptr<const LeafKey> LeafDir::shared_key(bool create) const
{
	std::string path = dir_ + "/" + kSharedKeyFile;
	for (int attempt = 0; attempt < 3; ++attempt) {
		if (auto text = read_path(path)) {
			try {
				return LeafKey::parse(*text, path);
			} catch (const Error &e) {
				log::warn(std::string(e.what()) + ": making a new shared leaf key");
				if (unlink(path.c_str()) != 0 && errno != ENOENT)
					throw errno_error("remove shared leaf key", errno, path);
				continue;
			}
		}
		if (!create)
			return nullptr;
		// Made under a private name, then linked into place: two processes
		// racing both end up with the key that won.
		sys::make_dir(dir_, 0700);
		auto key = LeafKey::generate();
		std::string mine = dir_ + "/.leaf-key-" + std::to_string(getpid()) + ".tmp";
		sys::write_file_atomic(mine, key->pem(), 0600, true);
		int rc = link(mine.c_str(), path.c_str());
		int err = errno;
		unlink(mine.c_str());
		if (rc == 0)
			return key;
		if (err != EEXIST)
			throw errno_error("write shared leaf key", err, path);
	}
	throw env_error("read shared leaf key", "it keeps disappearing", path);
}

} // namespace sonic::tls
