// sonic apply -f FILE [--check] [--diff] [--prune]
#include "cli.hpp"

#include "apply/apply.hpp"
#include "sys/caps.hpp"

#include <iostream>

namespace sonic::cmd {

namespace {

const std::initializer_list<sys::Cap> kCaps = {sys::Cap::Bpf, sys::Cap::NetAdmin, sys::Cap::Perfmon};

struct ApplyArgs {
	std::string file;
	bool check = false;
	bool diff = false;
	bool prune = false;
};

bool removes(apply::Op op)
{
	return op == apply::Op::AccelDisable || op == apply::Op::FwDetach || op == apply::Op::FwDel ||
	       op == apply::Op::TproxyDel;
}

out::Value action_row(const apply::Action &a)
{
	return {{"action", std::string(apply::op_name(a.op))}, {"command", a.text}, {"why", a.why}};
}

out::Value rows(const std::vector<const apply::Action *> &actions)
{
	out::Value v = out::Value::array();
	for (const apply::Action *a : actions)
		v.push_back(action_row(*a));
	return v;
}

// --diff: one line per action, "+" for what is added or changed, "-" for
// what is removed; on standard error when standard output carries JSON.
void print_diff(const Cli &cli, const apply::Plan &plan)
{
	std::ostream &os = cli.format() == out::Format::Text ? std::cout : std::cerr;
	for (const apply::Action &a : plan.actions)
		os << (removes(a.op) ? "- " : "+ ") << "sonic " << a.text << "   # " << a.why << "\n";
}

int run_apply(Cli &cli, const ApplyArgs &args)
{
	apply::Desired desired = apply::load(args.file);
	apply::resolve(desired);
	sys::require_caps("apply", kCaps);
	const bpf::Bpffs fs = cli.bpffs();
	apply::Plan plan = apply::plan(desired, apply::observe(fs, cli.g.state_dir), args.prune);
	if (args.diff)
		print_diff(cli, plan);

	out::Value notes = out::Value::array();
	for (const std::string &n : plan.notes)
		notes.push_back(n);
	std::vector<const apply::Action *> all;
	for (const apply::Action &a : plan.actions)
		all.push_back(&a);

	if (args.check) {
		cli.report({{"changed", !plan.actions.empty()},
			   {"check", true},
			   {"file", desired.source},
			   {"actions", rows(all)},
			   {"notes", notes}});
		return 0;
	}
	apply::Outcome o = apply::execute(fs, cli.g.state_dir, plan);
	out::Value v = {{"changed", !o.done.empty()},
			{"check", false},
			{"file", desired.source},
			{"actions", rows(o.done)},
			{"notes", notes}};
	if (!o.failed) {
		cli.report(v);
		return 0;
	}
	v["failed"] = action_row(*o.failed);
	v["error"] = o.error;
	v["left"] = rows(o.left);
	cli.print(v);
	return exit_code(o.kind);
}

} // namespace

void add_apply(Cli &cli)
{
	auto args = std::make_shared<ApplyArgs>();
	CLI::App *a = cli.command("apply",
				  "Converge the data plane and the CA on a declarative TOML file: change only the "
				  "difference",
				  [&cli, args] { return run_apply(cli, *args); });
	a->add_option("-f,--file", args->file, "The state file (sonic-apply(8))")->required()->type_name("FILE");
	a->add_flag("--check", args->check, "Change nothing; report what would change (exit 0 either way)");
	a->add_flag("--diff", args->diff, "Print each action as a line, + added or changed, - removed");
	a->add_flag("--prune", args->prune, "Also remove what sonic manages and the file does not name");
}

} // namespace sonic::cmd
