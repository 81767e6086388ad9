// CLI parsing through the real command tree. Every case here fails or ends
// before sonic touches the kernel, so none needs root.
#include "cli.hpp"

#include <catch2/catch.hpp>
#include <iostream>
#include <sstream>

namespace {

struct Result {
	int code;
	std::string out;
	std::string err;
};

Result sonic_run(std::vector<std::string> args)
{
	args.insert(args.begin(), "sonic");
	std::vector<char *> argv;
	for (std::string &a : args)
		argv.push_back(a.data());
	std::ostringstream out, err;
	auto *old_out = std::cout.rdbuf(out.rdbuf());
	auto *old_err = std::cerr.rdbuf(err.rdbuf());
	sonic::cmd::Cli cli;
	sonic::cmd::add_objects(cli);
	int code = cli.run(static_cast<int>(argv.size()), argv.data());
	std::cout.rdbuf(old_out);
	std::cerr.rdbuf(old_err);
	return {code, out.str(), err.str()};
}

} // namespace

TEST_CASE("no object, unknown objects and verbs are usage errors", "[cli]")
{
	auto r = sonic_run({});
	CHECK(r.code == 1);
	CHECK_THAT(r.err, Catch::Contains("an object is required"));

	r = sonic_run({"foo"});
	CHECK(r.code == 1);
	CHECK_THAT(r.err, Catch::StartsWith("Error: unknown object 'foo'"));
	CHECK_THAT(r.err, Catch::Contains("Usage: sonic"));

	r = sonic_run({"prog", "frob"});
	CHECK(r.code == 1);
	CHECK_THAT(r.err, Catch::StartsWith("Error: prog: unknown verb 'frob'"));
	CHECK_THAT(r.err, Catch::Contains("Usage: sonic prog"));

	CHECK(sonic_run({"prog"}).code == 1);
}

TEST_CASE("names match exactly, never by prefix", "[cli]")
{
	CHECK(sonic_run({"pro", "show"}).code == 1);
	CHECK(sonic_run({"prog", "sho"}).code == 1);
	CHECK(sonic_run({"accel", "enab"}).code == 1);
	CHECK(sonic_run({"--jso", "prog", "help"}).code == 1);
}

TEST_CASE("errors are JSON under -j", "[cli]")
{
	auto r = sonic_run({"-j", "foo"});
	CHECK(r.code == 1);
	auto v = nlohmann::json::parse(r.err);
	CHECK(v["error"] == "unknown object 'foo'");
	CHECK(v["exit_code"] == 1);
	CHECK(r.out.empty());
}

TEST_CASE("help for sonic and for every object", "[cli]")
{
	auto r = sonic_run({"--help"});
	CHECK(r.code == 0);
	for (const char *obj : {"prog", "accel", "stats"})
		CHECK_THAT(r.out, Catch::Contains(obj));

	r = sonic_run({"prog", "help"});
	CHECK(r.code == 0);
	CHECK_THAT(r.out, Catch::Contains("Usage: sonic prog"));
	for (const char *verb : {"load", "unload", "show"})
		CHECK_THAT(r.out, Catch::Contains(verb));

	r = sonic_run({"accel", "help"});
	CHECK(r.code == 0);
	for (const char *verb : {"enable", "disable", "status"})
		CHECK_THAT(r.out, Catch::Contains(verb));

	r = sonic_run({"accel", "enable", "--help"});
	CHECK(r.code == 0);
	CHECK_THAT(r.out, Catch::Contains("Usage: sonic accel enable"));
	CHECK_THAT(r.out, Catch::Contains("[cgroup PATH] [ports PORTS] [scope SCOPE]"));

	r = sonic_run({"stats", "help"});
	CHECK(r.code == 0);
	CHECK_THAT(r.out, Catch::Contains("--watch"));
}

TEST_CASE("version, and its features under -j", "[cli]")
{
	auto r = sonic_run({"--version"});
	CHECK(r.code == 0);
	CHECK_THAT(r.out, Catch::StartsWith("sonic "));

	r = sonic_run({"-j", "--version"});
	CHECK(r.code == 0);
	auto v = nlohmann::json::parse(r.out);
	CHECK(v["version"].is_string());
	CHECK(v["features"] == nlohmann::json::array({"accel", "splice", "steer", "fw"}));
}

TEST_CASE("keyword arguments are checked before anything runs", "[cli]")
{
	auto r = sonic_run({"accel", "enable", "ports"});
	CHECK(r.code == 1);
	CHECK_THAT(r.err, Catch::Contains("'ports' needs a value"));

	r = sonic_run({"accel", "enable", "ports", "0"});
	CHECK(r.code == 1);
	CHECK_THAT(r.err, Catch::Contains("outside 1-65535"));

	r = sonic_run({"accel", "enable", "scope", "legs"});
	CHECK(r.code == 1);
	CHECK_THAT(r.err, Catch::Contains("scope must be all or proxy"));
	CHECK_THAT(r.err, Catch::Contains("legs"));

	r = sonic_run({"accel", "enable", "bogus", "x"});
	CHECK(r.code == 1);
	CHECK_THAT(r.err, Catch::Contains("unexpected argument 'bogus'"));

	r = sonic_run({"accel", "enable", "cgroup", "/a", "cgroup", "/b"});
	CHECK(r.code == 1);
	CHECK_THAT(r.err, Catch::Contains("given twice"));

	r = sonic_run({"accel", "disable", "ports", "80"});
	CHECK(r.code == 1);
	CHECK_THAT(r.err, Catch::Contains("unexpected argument 'ports'"));
}

TEST_CASE("option values are validated", "[cli]")
{
	CHECK(sonic_run({"accel", "disable", "--timeout", "-1"}).code == 1);
	CHECK(sonic_run({"accel", "disable", "--timeout", "soon"}).code == 1);
	CHECK(sonic_run({"prog", "unload", "--timeout", "-2"}).code == 1);
	CHECK(sonic_run({"stats", "frob"}).code == 1);
	CHECK(sonic_run({"stats", "--watch", "0"}).code == 1);
	CHECK(sonic_run({"stats", "--count", "3"}).code == 1);
	CHECK(sonic_run({"stats", "--watch", "1", "--count", "0"}).code == 1);
}

TEST_CASE("global options go before or after the verb", "[cli]")
{
	auto before = sonic_run({"-j", "accel", "enable", "ports", "x"});
	auto after = sonic_run({"accel", "enable", "ports", "x", "-j"});
	CHECK(before.code == 1);
	CHECK(after.code == 1);
	CHECK(nlohmann::json::parse(before.err) == nlohmann::json::parse(after.err));
}
