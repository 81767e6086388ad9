// libbpf glue: its messages go through sonic's logger, and a failed call
// becomes a sonic Error carrying libbpf's reason and, under -d, its full log
// (the verifier log when the kernel rejects a program).
#pragma once

#include "bpf/fd.hpp"
#include "out/error.hpp"

#include <cstdint>
#include <optional>
#include <string>

namespace sonic::bpf {

// Routes libbpf's print callback into sonic's logger (debug level) and into a
// per-thread capture buffer.
void install_libbpf_logger();

// Everything libbpf printed on this thread since the last call.
std::string take_libbpf_log();

// The one-line reason in a libbpf log: the "... failed: ..." line, followed by
// the verifier's last complaint when there is a verifier log. Exposed for tests.
std::string libbpf_reason(const std::string &log);

// Builds the error for a failed libbpf call returning -errno.
Error libbpf_error(const std::string &op, int err, const std::string &object);

// Opens a pinned object; nullopt when the path does not exist.
std::optional<Fd> open_pinned(const std::string &path);
// Opens a pinned object or throws an environment error naming it.
Fd open_pinned_or_throw(const std::string &path, const std::string &op);

// Kernel ids of pinned objects.
uint32_t prog_id(int fd);
uint32_t map_id(int fd);

} // namespace sonic::bpf
