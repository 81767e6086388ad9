#include "cli.hpp"

#include "bpf/family.hpp"
#include "bpf/libbpf.hpp"
#include "out/error.hpp"
#include "out/log.hpp"
#include "sonic_version.hpp"

#include <bpf/libbpf.h>
#include <cmath>
#include <cstring>
#include <iostream>

namespace sonic::cmd {

namespace {

const char *const kSummary = "sonic: a programmable edge engine for Linux (eBPF data plane, HTTP/TLS proxy, JS workers)";

bool starts_with(const std::string &s, const char *prefix) { return s.rfind(prefix, 0) == 0; }

// Options of the root that take a separate value.
bool takes_value(const std::string &arg) { return arg == "--bpffs" || arg == "--state-dir"; }

void print_error(const Error &e, bool json, bool debug)
{
	if (json) {
		out::Value v = {{"error", e.what()}, {"exit_code", exit_code(e.kind())}};
		if (!e.hint().empty())
			v["hint"] = e.hint();
		if (debug && !e.detail().empty())
			v["detail"] = e.detail();
		std::cerr << v.dump() << std::endl;
		return;
	}
	std::string text = "Error: " + std::string(e.what()) + "\n";
	if (!e.hint().empty())
		text += "Hint: " + e.hint() + "\n";
	if (debug && !e.detail().empty())
		text += e.detail() + (e.detail().back() == '\n' ? "" : "\n");
	std::cerr << text << std::flush;
}


int print_version(const Cli &cli)
{
	out::Value features = out::Value::array();
	for (const auto &f : cli.families)
		features.push_back(std::string(f.name));
	out::Value v = {{"version", SONIC_VERSION},
			{"libbpf", libbpf_version_string()},
			{"features", features}};
	if (cli.format() == out::Format::Text)
		std::cout << "sonic " << SONIC_VERSION << " (libbpf " << libbpf_version_string() << "; features: "
			  << out::scalar_text(features) << ")\n";
	else
		cli.print(v);
	return 0;
}

} // namespace

// Help of one command, titled with its full path ("sonic accel enable").
// App::help() would recurse into the selected subcommand instead.
std::string help_of(const CLI::App *cmd)
{
	std::string path;
	for (const CLI::App *a = cmd; a; a = a->get_parent())
		path = a->get_name() + (path.empty() ? "" : " " + path);
	return cmd->get_formatter()->make_help(cmd, path, CLI::AppFormatMode::Normal);
}

Cli::Cli() : app(kSummary, "sonic")
{
	app.set_help_flag("-h,--help", "Print this help and exit");
	app.fallthrough();
	app.require_subcommand(0, 1);
	app.add_flag("-j,--json", g.json, "Print JSON");
	app.add_flag("-p,--pretty", g.pretty, "Print indented JSON (implies -j)");
	app.add_flag("-d,--debug", g.debug, "Print debug output: libbpf messages, verifier logs");
	app.add_flag("-q,--quiet", g.quiet, "Print errors only");
	app.add_option("--bpffs", g.bpffs, "sonic's directory on bpffs")->capture_default_str();
	app.add_option("--state-dir", g.state_dir, "Directory for sonic's state")->capture_default_str();
	app.add_flag("--version", g.version, "Print the version (with -j: compiled-in features) and exit");
	app.footer("Run `sonic OBJECT help` for an object's verbs. See sonic(8).");
}

CLI::App *Cli::object(const std::string &name, const std::string &summary)
{
	CLI::App *obj = app.add_subcommand(name, summary);
	obj->fallthrough();
	obj->require_subcommand(1, 1);
	CLI::App *help = obj->add_subcommand("help", "Print the verbs of " + name);
	help->fallthrough();
	help->callback([this, obj] {
		action_ = [obj] {
			std::cout << help_of(obj);
			return 0;
		};
	});
	return obj;
}

CLI::App *Cli::command(const std::string &name, const std::string &summary, std::function<int()> fn)
{
	CLI::App *c = app.add_subcommand(name, summary);
	c->fallthrough();
	c->callback([this, fn = std::move(fn)] { action_ = fn; });
	return c;
}

CLI::App *Cli::verb(CLI::App *obj, const std::string &name, const std::string &summary, std::function<int()> fn)
{
	CLI::App *v = obj->add_subcommand(name, summary);
	v->fallthrough();
	v->callback([this, fn = std::move(fn)] { action_ = fn; });
	return v;
}

out::Format Cli::format() const
{
	if (g.pretty)
		return out::Format::JsonPretty;
	return g.json ? out::Format::Json : out::Format::Text;
}

void Cli::print(const out::Value &value) const
{
	out::render(value, format(), std::cout);
}

void Cli::report(const out::Value &value) const
{
	if (g.quiet && format() == out::Format::Text)
		return;
	print(value);
}

// Names are matched exactly; an unknown object or verb is reported as such
// rather than as CLI11's generic "arguments were not expected".
void Cli::check_names(int argc, char **argv) const
{
	std::vector<std::string> words;
	for (int i = 1; i < argc; ++i) {
		std::string a = argv[i];
		if (a == "--")
			break;
		if (starts_with(a, "-")) {
			if (takes_value(a))
				++i;
			continue;
		}
		words.push_back(a);
		if (words.size() == 2)
			break;
	}
	if (words.empty())
		return;
	const CLI::App *obj = nullptr;
	for (const CLI::App *sub : app.get_subcommands([](const CLI::App *) { return true; }))
		if (sub->get_name() == words[0])
			obj = sub;
	if (!obj)
		throw usage_error("", "unknown object '" + words[0] + "'").with_usage();
	if (words.size() < 2 || obj->get_require_subcommand_min() == 0)
		return;
	for (const CLI::App *sub : obj->get_subcommands([](const CLI::App *) { return true; }))
		if (sub->get_name() == words[1])
			return;
	throw usage_error(words[0], "unknown verb '" + words[1] + "'").with_usage();
}

int Cli::run(int argc, char **argv)
{
	// -j must shape the error output even when parsing fails.
	// Grouped short flags (-jq) and --json=VALUE count too.
	auto truthy = [](const std::string &v) { return v == "true" || v == "1" || v == "on" || v == "yes"; };
	for (int i = 1; i < argc; ++i) {
		std::string a = argv[i];
		if (a == "--")
			break;
		if (a.size() > 1 && a[0] == '-' && a[1] != '-' &&
		    a.find_first_not_of("jpdq", 1) == std::string::npos) {
			g.json |= a.find('j') != std::string::npos;
			g.pretty |= a.find('p') != std::string::npos;
			g.debug |= a.find('d') != std::string::npos;
		}
		if (a == "--json" || (a.starts_with("--json=") && truthy(a.substr(7))))
			g.json = true;
		if (a == "--pretty" || (a.starts_with("--pretty=") && truthy(a.substr(9))))
			g.pretty = true;
		if (a == "--debug" || (a.starts_with("--debug=") && truthy(a.substr(8))))
			g.debug = true;
	}
	bpf::install_libbpf_logger();
	CLI::App *usage_of = &app;
	try {
		try {
			check_names(argc, argv);
			app.parse(argc, argv);
		} catch (const CLI::CallForHelp &) {
			const CLI::App *target = &app;
			while (!target->get_subcommands().empty())
				target = target->get_subcommands().front();
			std::cout << help_of(target);
			return 0;
		} catch (const CLI::ParseError &e) {
			for (CLI::App *sub = &app; !sub->get_subcommands().empty();)
				usage_of = sub = sub->get_subcommands().front();
			throw usage_error(usage_of == &app ? "" : usage_of->get_name(), e.what()).with_usage();
		} catch (const Error &e) {
			if (e.kind() == ErrorKind::Usage)
				for (const CLI::App *sub : app.get_subcommands([](const CLI::App *) { return true; }))
					if (sub->get_name() == e.op())
						usage_of = const_cast<CLI::App *>(sub);
			throw;
		}
		for (CLI::App *sub = &app; !sub->get_subcommands().empty();)
			usage_of = sub = sub->get_subcommands().front();
		if (g.pretty)
			g.json = true;
		log::set_level(g.debug ? log::Level::Debug : g.quiet ? log::Level::Error : log::Level::Info);
		if (g.version)
			return print_version(*this);
		if (!action_) {
			const CLI::App *target = &app;
			while (!target->get_subcommands().empty())
				target = target->get_subcommands().front();
			if (target != &app && target->get_require_subcommand_min() > 0) {
				usage_of = const_cast<CLI::App *>(target);
				throw usage_error(target->get_name(), "a verb is required").with_usage();
			}
			throw usage_error("", "an object is required").with_usage();
		}
		return action_();
	} catch (const Error &e) {
		print_error(e, g.json || g.pretty, g.debug);
		if (e.shows_usage() && !(g.json || g.pretty))
			std::cerr << "\n" << help_of(usage_of);
		return exit_code(e.kind());
	} catch (const std::exception &e) {
		print_error(kernel_error("", e.what()), g.json || g.pretty, g.debug);
		return 2;
	}
}

Keywords::Keywords(const std::vector<std::string> &args, std::initializer_list<std::string> known, const std::string &verb)
{
	for (size_t i = 0; i < args.size(); ++i) {
		const std::string &k = args[i];
		if (std::find(known.begin(), known.end(), k) == known.end())
			throw usage_error(verb, "unexpected argument '" + k + "'").with_usage();
		if (i + 1 >= args.size())
			throw usage_error(verb, "'" + k + "' needs a value").with_usage();
		if (values_.count(k))
			throw usage_error(verb, "'" + k + "' given twice").with_usage();
		values_[k] = args[++i];
	}
}

std::optional<std::string> Keywords::get(const std::string &keyword) const
{
	auto it = values_.find(keyword);
	if (it == values_.end())
		return std::nullopt;
	return it->second;
}

std::chrono::milliseconds seconds_arg(double seconds, const std::string &option)
{
	if (!(seconds >= 0) || !std::isfinite(seconds))
		throw usage_error(option, "must be a number of seconds, 0 or more");
	return std::chrono::milliseconds(static_cast<long long>(std::llround(seconds * 1000)));
}

void add_objects(Cli &cli)
{
	add_prog(cli);
	add_accel(cli);
	add_tproxy(cli);
	add_fw(cli);
	add_ca(cli);
	add_cert(cli);
	add_run(cli);
	add_apply(cli);
	add_stats(cli);
}

} // namespace sonic::cmd
