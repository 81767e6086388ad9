// sonic's directory on bpffs: <root>/{prog,map,link}.
#pragma once

#include "bpf/fd.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace sonic::bpf {

class Bpffs {
public:
	explicit Bpffs(std::string root);

	const std::string &root() const { return root_; }
	std::string prog_path(std::string_view name) const { return root_ + "/prog/" + std::string(name); }
	std::string map_path(std::string_view name) const { return root_ + "/map/" + std::string(name); }
	std::string link_path(std::string_view name) const { return root_ + "/link/" + std::string(name); }

	// Mounts bpffs when the root is not on one (at /sys/fs/bpf when the root
	// lies below it, else on the root itself) and creates the three
	// directories. Returns the mount point it mounted, or "".
	std::string ensure() const;

	// Whether the root directory exists on a bpffs.
	bool present() const;

	// Names pinned in one of the three directories, sorted.
	std::vector<std::string> list(std::string_view dir) const;

	// Removes the three directories and the root when empty. Returns whether
	// anything was removed.
	bool remove_empty_dirs() const;

	// Holds an exclusive lock on the root so concurrent sonic commands that
	// change kernel state run one after another.
	Fd lock() const;

private:
	std::string root_;
};

} // namespace sonic::bpf
