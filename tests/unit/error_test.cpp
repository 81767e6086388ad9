#include "out/error.hpp"

#include <catch2/catch.hpp>
#include <cerrno>

using namespace sonic;

TEST_CASE("error kinds map to the documented exit codes", "[error]")
{
	CHECK(exit_code(ErrorKind::Usage) == 1);
	CHECK(exit_code(ErrorKind::Kernel) == 2);
	CHECK(exit_code(ErrorKind::Environment) == 3);
}

TEST_CASE("messages carry operation, reason and object", "[error]")
{
	CHECK(std::string(kernel_error("load accel programs", "Permission denied", "accel").what()) ==
	      "load accel programs: Permission denied [object = accel]");
	CHECK(std::string(usage_error("accel enable", "'ports' needs a value").what()) ==
	      "accel enable: 'ports' needs a value");
	CHECK(std::string(usage_error("", "unknown object 'foo'").what()) == "unknown object 'foo'");
}

TEST_CASE("errno values are classified", "[error]")
{
	CHECK(errno_error("open", EPERM).kind() == ErrorKind::Environment);
	CHECK(errno_error("open", EACCES).kind() == ErrorKind::Environment);
	CHECK(errno_error("open", ENOENT, "/x").kind() == ErrorKind::Environment);
	CHECK(errno_error("attach", EINVAL).kind() == ErrorKind::Kernel);
	CHECK(errno_error("attach", EBUSY).kind() == ErrorKind::Kernel);
	CHECK(std::string(errno_error("open", ENOENT, "/x").what()) == "open: No such file or directory [object = /x]");
}

TEST_CASE("hints and details travel with the error", "[error]")
{
	Error e = env_error("prog load", "missing capability CAP_BPF");
	e.with_hint("run sonic as root").with_detail("log");
	CHECK(e.hint() == "run sonic as root");
	CHECK(e.detail() == "log");
}

TEST_CASE("only mistakes in the command line's shape ask for the usage", "[error]")
{
	CHECK_FALSE(usage_error("parse ports", "port 70000 is outside 1-65535").shows_usage());
	Error e = usage_error("accel", "unknown verb 'x'");
	CHECK(e.with_usage().shows_usage());
	CHECK(e.kind() == ErrorKind::Usage);
}
