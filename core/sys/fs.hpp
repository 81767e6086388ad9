// Small file helpers with sonic errors.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>

namespace sonic::sys {

// Whole file as a string; throws an error of OP naming PATH (ENOENT ->
// environment error).
std::string read_file(const std::string &path, const char *op = "read");
std::optional<std::string> try_read_file(const std::string &path);

// A single integer from a file such as /proc/sys/kernel/bpf_stats_enabled.
std::optional<long long> read_int_file(const std::string &path);

// Creates DIR (and missing parents, 0755) with MODE; an existing DIR gets
// MODE too. Throws errno_error (EACCES, EROFS -> environment error).
void make_dir(const std::string &dir, mode_t mode);

// Replaces PATH with DATA in one step: a reader sees the old file or the
// new one, never a part. The new file has MODE from its creation on. SYNC
// flushes it (and the directory) to disk before returning.
void write_file_atomic(const std::string &path, std::string_view data, mode_t mode, bool sync);

} // namespace sonic::sys
