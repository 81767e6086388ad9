#include "sys/process.hpp"

#include "out/error.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace sonic::sys {

Ran run(const std::vector<std::string> &argv, const std::vector<std::string> &env)
{
	std::vector<char *> args;
	for (const std::string &a : argv)
		args.push_back(const_cast<char *>(a.c_str()));
	args.push_back(nullptr);
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		throw errno_error("run " + argv[0], errno);
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		close(fds[0]);
		close(fds[1]);
		throw errno_error("run " + argv[0], err);
	}
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		int null = open("/dev/null", O_RDONLY);
		if (null >= 0)
			dup2(null, STDIN_FILENO);
		for (const std::string &e : env)
			putenv(const_cast<char *>(e.c_str()));
		execv(args[0], args.data());
		_exit(127);
	}
	close(fds[1]);
	Ran r;
	char buf[4096];
	for (;;) {
		ssize_t n = read(fds[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		r.output.append(buf, static_cast<size_t>(n));
	}
	close(fds[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		continue;
	r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	return r;
}

} // namespace sonic::sys
