#include "tls/trust.hpp"

#include "out/error.hpp"
#include "sys/fs.hpp"
#include "sys/process.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace sonic::tls {

namespace {

const char kFileName[] = "sonic-ca.crt";

bool is_dir(const std::string &path)
{
	struct stat st {};
	return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::optional<std::string> find_tool(const std::string &root, const std::string &name)
{
	for (const char *dir : {"usr/sbin/", "usr/bin/", "sbin/", "bin/"}) {
		std::string path = root + dir + name;
		if (access(path.c_str(), X_OK) == 0)
			return path;
	}
	return std::nullopt;
}

TrustStore require_store()
{
	auto store = detect_trust_store();
	if (!store)
		throw env_error("ca trust", "no known system trust store layout on this host")
			.with_hint("install `sonic ca export` output by hand; Debian (update-ca-certificates) and RHEL "
				   "(update-ca-trust) layouts are known");
	return *store;
}

void update(const std::vector<std::string> &command)
{
	auto [status, output] = sys::run(command);
	if (status != 0)
		throw env_error("ca trust", command[0] + " failed with status " + std::to_string(status))
			.with_detail(output);
}

} // namespace

std::optional<TrustStore> detect_trust_store(const std::string &root)
{
	std::string r = root.empty() || root.back() != '/' ? root + "/" : root;
	if (auto tool = find_tool(r, "update-ca-certificates");
	    tool && is_dir(r + "usr/local/share/ca-certificates"))
		return TrustStore{"debian", r + "usr/local/share/ca-certificates/" + kFileName, {*tool}, {*tool, "--fresh"}};
	if (auto tool = find_tool(r, "update-ca-trust"); tool && is_dir(r + "etc/pki/ca-trust/source/anchors"))
		return TrustStore{"rhel", r + "etc/pki/ca-trust/source/anchors/" + kFileName, {*tool, "extract"},
				  {*tool, "extract"}};
	return std::nullopt;
}

TrustResult trust_install(const Ca &ca)
{
	TrustResult r{false, require_store()};
	if (sys::try_read_file(r.store.file) == ca.cert_pem())
		return r;
	sys::write_file_atomic(r.store.file, ca.cert_pem(), 0644, true);
	update(r.store.update);
	r.changed = true;
	return r;
}

TrustResult trust_remove()
{
	TrustResult r{false, require_store()};
	if (unlink(r.store.file.c_str()) != 0) {
		if (errno == ENOENT)
			return r;
		throw errno_error("ca trust --remove", errno, r.store.file);
	}
	update(r.store.rebuild);
	r.changed = true;
	return r;
}

std::optional<bool> is_trusted(const Ca &ca)
{
	auto store = detect_trust_store();
	if (!store)
		return std::nullopt;
	return sys::try_read_file(store->file) == ca.cert_pem();
}

} // namespace sonic::tls
