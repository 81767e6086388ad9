// The command-line frame shared by every object file: global options, the
// object/verb tree, keyword arguments, output and error rendering.
#pragma once

#include "bpf/bpffs.hpp"
#include "bpf/family.hpp"
#include "out/render.hpp"

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace sonic::cmd {

struct Globals {
	bool json = false;
	bool pretty = false;
	bool debug = false;
	bool quiet = false;
	bool version = false;
	std::string bpffs = "/sys/fs/bpf/sonic";
	std::string state_dir = "/var/lib/sonic";
};

class Cli {
public:
	Cli();

	CLI::App app;
	Globals g;

	// Adds OBJECT (with a `help` verb of its own).
	CLI::App *object(const std::string &name, const std::string &summary);
	// Adds an object that takes no verb (e.g. stats); FN runs after parsing.
	CLI::App *command(const std::string &name, const std::string &summary, std::function<int()> fn);
	// Adds VERB to OBJECT; FN runs after the whole command line is parsed.
	CLI::App *verb(CLI::App *object, const std::string &name, const std::string &summary, std::function<int()> fn);

	// The BPF families `prog` loads and unloads: the ones compiled in, or a
	// test executable's own.
	std::span<const bpf::Family> families = bpf::builtin_families();

	out::Format format() const;
	void print(const out::Value &value) const;
	// A mutating verb's report: like print, but -q silences the text form.
	void report(const out::Value &value) const;
	bpf::Bpffs bpffs() const { return bpf::Bpffs(g.bpffs); }

	// Runs the command line; returns the exit status.
	int run(int argc, char **argv);

private:
	std::function<int()> action_;
	void check_names(int argc, char **argv) const;
};

// Help text of one command, titled with its full path.
std::string help_of(const CLI::App *cmd);

// ip-style keyword arguments: `cgroup PATH ports 80,443`.
class Keywords {
public:
	// KNOWN lists the keywords this verb takes, each followed by one value.
	Keywords(const std::vector<std::string> &args, std::initializer_list<std::string> known, const std::string &verb);
	std::optional<std::string> get(const std::string &keyword) const;

private:
	std::map<std::string, std::string> values_;
};

// Seconds given on the command line as a duration; usage error if negative.
std::chrono::milliseconds seconds_arg(double seconds, const std::string &option);

// One registration function per object file.
void add_prog(Cli &cli);
void add_accel(Cli &cli);
void add_tproxy(Cli &cli);
void add_fw(Cli &cli);
void add_ca(Cli &cli);
void add_cert(Cli &cli);
void add_stats(Cli &cli);
void add_run(Cli &cli);
void add_apply(Cli &cli);

// Every object, in the order `sonic --help` lists them.
void add_objects(Cli &cli);

} // namespace sonic::cmd
