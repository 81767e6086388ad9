// Running a helper program to completion.
#pragma once

#include <string>
#include <vector>

namespace sonic::sys {

struct Ran {
	int status = 0;     // exit status, or 128 + the signal that ended it
	std::string output; // what it wrote to stdout and stderr, interleaved
};

// Runs ARGV[0] (a path) with ARGV, stdin from /dev/null and ENV added to
// the environment ("NAME=value"). Throws errno_error when it cannot start.
Ran run(const std::vector<std::string> &argv, const std::vector<std::string> &env = {});

} // namespace sonic::sys
