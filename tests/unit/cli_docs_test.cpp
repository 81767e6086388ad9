// The man pages and the shell completions cannot drift from the code: this
// walks the command tree the executable builds and checks that every object,
// verb, option, keyword and fixed argument is documented in man/ and offered
// by each file of completions/, and that the completions offer nothing the
// code does not accept.
//
// What counts as documented (see the comment at the top of each page):
//   man/sonic.8        a .TP entry per object and per global option, and a
//                      reference sonic-OBJECT(8) per object;
//   man/sonic-OBJ.8    a .TP entry "sonic OBJ VERB ..." per verb (or
//                      "sonic OBJ ..." for an object without verbs) whose
//                      line names the verb's options, keywords and arguments,
//                      and a .TP entry for each of those;
//   man/sonic-stats.8  a .TP entry per counter field of `sonic stats` (accel,
//                      splice, steer and fw), in the member of its family.
// The completion files share one table of 'PATH|KIND|WORDS' lines, described
// at the top of each file.
#include "bpf/accel.hpp"
#include "bpf/fw.hpp"
#include "bpf/splice.hpp"
#include "bpf/steer.hpp"
#include "cli.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

namespace {

namespace fs = std::filesystem;

using Problems = std::vector<std::string>;

// ---- the command tree ---------------------------------------------------

struct Option {
	std::vector<std::string> names; // with their dashes: "-j", "--json"
	bool takes_value = false;
	std::string description;
};

// One command of the tree: sonic itself, an object or a verb.
struct Command {
	std::vector<std::string> path; // words after "sonic"; empty for sonic
	std::vector<std::string> subcommands;
	std::vector<Option> options;
	// From the help text of its positional arguments: ip-style keywords
	// ("[cgroup PATH] [ports PORTS]") and fixed words ("accel | all").
	std::vector<std::string> keywords;
	std::vector<std::string> args;
	std::string positional_help; // the help texts of its positional arguments

	std::string name() const
	{
		std::string s = "sonic";
		for (const std::string &w : path)
			s += " " + w;
		return s;
	}
	std::string key() const
	{
		std::string s;
		for (const std::string &w : path)
			s += (s.empty() ? "" : " ") + w;
		return s;
	}
};

std::vector<std::string> split_words(const std::string &s)
{
	std::istringstream in(s);
	std::vector<std::string> words;
	for (std::string w; in >> w;)
		words.push_back(w);
	return words;
}

void read_positional_grammar(const std::string &description, Command &cmd)
{
	static const std::regex keyword(R"(\b([a-z][a-z0-9-]*) [A-Z][A-Z0-9_:.]*\b)");
	for (std::sregex_iterator it(description.begin(), description.end(), keyword), end; it != end; ++it)
		cmd.keywords.push_back((*it)[1]);

	static const std::regex word(R"(^[a-z][a-z0-9-]*$)");
	// "{drop | pass | limit RATE}": the one-word alternatives of a group are
	// fixed words (the others start with a keyword, read above).
	static const std::regex group(R"(\{([^}]*)\})");
	for (std::sregex_iterator it(description.begin(), description.end(), group), end; it != end; ++it) {
		std::stringstream in((*it)[1].str());
		for (std::string part; std::getline(in, part, '|');) {
			auto words = split_words(part);
			if (words.size() == 1 && std::regex_match(words[0], word))
				cmd.args.push_back(words[0]);
		}
	}
	std::string alternatives = description.substr(0, description.find('('));
	std::vector<std::string> parts;
	std::stringstream in(alternatives);
	for (std::string part; std::getline(in, part, '|');) {
		auto words = split_words(part);
		if (words.size() != 1 || !std::regex_match(words[0], word))
			return;
		parts.push_back(words[0]);
	}
	if (parts.size() >= 2)
		cmd.args.insert(cmd.args.end(), parts.begin(), parts.end());
}

void walk(const CLI::App *app, std::vector<std::string> path, std::vector<Command> &out)
{
	Command cmd;
	cmd.path = path;
	for (const CLI::App *sub : app->get_subcommands([](const CLI::App *) { return true; }))
		cmd.subcommands.push_back(sub->get_name());
	for (const CLI::Option *opt : app->get_options([](const CLI::Option *) { return true; })) {
		if (opt->get_positional() && !opt->nonpositional()) {
			read_positional_grammar(opt->get_description(), cmd);
			cmd.positional_help += opt->get_description() + "\n";
			continue;
		}
		// -h/--help is everywhere; sonic(8) documents it once.
		if (opt == app->get_help_ptr() && !path.empty())
			continue;
		Option o;
		for (const std::string &s : opt->get_snames())
			o.names.push_back("-" + s);
		for (const std::string &l : opt->get_lnames())
			o.names.push_back("--" + l);
		o.takes_value = opt->get_items_expected_max() > 0; // 0 for a flag
		o.description = opt->get_description();
		cmd.options.push_back(o);
	}
	out.push_back(cmd);
	for (const CLI::App *sub : app->get_subcommands([](const CLI::App *) { return true; })) {
		path.push_back(sub->get_name());
		walk(sub, path, out);
		path.pop_back();
	}
}

// The tree exactly as cmd/main.cpp builds it.
std::vector<Command> command_tree()
{
	sonic::cmd::Cli cli;
	sonic::cmd::add_objects(cli);
	std::vector<Command> tree;
	walk(&cli.app, {}, tree);
	return tree;
}

const Command &root_of(const std::vector<Command> &tree) { return tree.front(); }

// ---- files ----------------------------------------------------------------

std::optional<std::string> read_source(const std::string &relative)
{
	std::ifstream in(std::string(SONIC_SOURCE_DIR) + "/" + relative);
	if (!in)
		return std::nullopt;
	std::ostringstream s;
	s << in.rdbuf();
	return s.str();
}

// man/<name> -> contents, for every page in man/.
std::map<std::string, std::string> man_pages()
{
	std::map<std::string, std::string> pages;
	for (const auto &entry : fs::directory_iterator(std::string(SONIC_SOURCE_DIR) + "/man"))
		if (entry.path().extension() == ".8") {
			const std::string name = entry.path().filename().string();
			pages[name] = *read_source("man/" + name);
		}
	return pages;
}

const char *const kCompletionFiles[] = {"completions/sonic.bash", "completions/_sonic", "completions/sonic.fish"};

// ---- roff -----------------------------------------------------------------

// The text a reader sees of one source line: escapes resolved, fonts and
// macro names dropped.
std::string roff_unescape(const std::string &s)
{
	std::string out;
	for (size_t i = 0; i < s.size(); ++i) {
		if (s[i] != '\\' || i + 1 >= s.size()) {
			out += s[i];
			continue;
		}
		char c = s[++i];
		switch (c) {
		case 'f': // font: \fB, \f(CW, \f[B]
			if (i + 1 < s.size() && s[i + 1] == '(')
				i += 3;
			else if (i + 1 < s.size() && s[i + 1] == '[')
				i = s.find(']', i);
			else
				i += 1;
			break;
		case '(': // special character: \(em
			out += (s.compare(i + 1, 2, "em") == 0 || s.compare(i + 1, 2, "en") == 0) ? "-" : " ";
			i += 2;
			break;
		case '"':
			return out;
		case '-':
			out += '-';
			break;
		case 'e':
			out += '\\';
			break;
		case ' ':
		case '~':
			out += ' ';
			break;
		case '&':
		case '|':
		case '^':
		case 'c':
			break;
		default:
			out += c;
		}
		if (i == std::string::npos)
			break;
	}
	return out;
}

// Arguments of a macro line, honouring double quotes.
std::vector<std::string> macro_args(const std::string &s)
{
	std::vector<std::string> args;
	size_t i = 0;
	while (i < s.size()) {
		while (i < s.size() && s[i] == ' ')
			++i;
		if (i >= s.size())
			break;
		std::string arg;
		if (s[i] == '"') {
			for (++i; i < s.size() && s[i] != '"'; ++i)
				arg += s[i];
			++i;
		} else {
			for (; i < s.size() && s[i] != ' '; ++i)
				arg += s[i];
		}
		args.push_back(arg);
	}
	return args;
}

struct Page {
	std::vector<std::string> lines; // text of each source line
	std::vector<std::string> tags;  // text of each .TP entry's tag line
	std::string text;               // every line, joined by newlines
};

std::string roff_line_text(const std::string &line)
{
	if (line.empty() || (line[0] != '.' && line[0] != '\''))
		return roff_unescape(line);
	size_t space = line.find(' ');
	std::string macro = line.substr(1, space == std::string::npos ? std::string::npos : space - 1);
	std::string rest = space == std::string::npos ? "" : line.substr(space + 1);
	static const std::set<std::string> spaced = {"B", "I", "SM", "SB", "SH", "SS"};
	static const std::set<std::string> alternating = {"BR", "RB", "BI", "IB", "IR", "RI"};
	std::string text;
	if (spaced.count(macro)) {
		for (const std::string &a : macro_args(rest))
			text += (text.empty() ? "" : " ") + a;
	} else if (alternating.count(macro)) {
		for (const std::string &a : macro_args(rest))
			text += a;
	}
	return roff_unescape(text);
}

Page parse_roff(const std::string &source)
{
	Page page;
	std::istringstream in(source);
	bool tag_next = false;
	for (std::string line; std::getline(in, line);) {
		if (line.rfind(".\\\"", 0) == 0 || line.rfind("'\\\"", 0) == 0)
			continue;
		if (line == ".TP" || line.rfind(".TP ", 0) == 0) {
			tag_next = true;
			continue;
		}
		std::string text = roff_line_text(line);
		if (tag_next)
			page.tags.push_back(text);
		tag_next = false;
		page.lines.push_back(text);
		page.text += text + "\n";
	}
	return page;
}

bool token_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; }

std::vector<std::string> tokens(const std::string &text)
{
	std::vector<std::string> out;
	std::string cur;
	for (char c : text + " ") {
		if (token_char(c)) {
			cur += c;
		} else if (!cur.empty()) {
			out.push_back(cur);
			cur.clear();
		}
	}
	return out;
}

bool has_token(const std::string &text, const std::string &token)
{
	for (const std::string &t : tokens(text))
		if (t == token)
			return true;
	return false;
}

// Whether TEXT starts with the words of PHRASE, as whole words.
bool starts_with_phrase(const std::string &text, const std::string &phrase)
{
	return text.rfind(phrase, 0) == 0 && (text.size() == phrase.size() || !token_char(text[phrase.size()]));
}

// ---- checks -----------------------------------------------------------

std::string quoted(const std::string &s) { return "'" + s + "'"; }

// PAGES maps a file name of man/ to its contents.
Problems check_man(const std::vector<Command> &tree, const std::map<std::string, std::string> &pages)
{
	Problems problems;
	auto main_it = pages.find("sonic.8");
	if (main_it == pages.end())
		return {"man/sonic.8 is missing"};
	const Page main = parse_roff(main_it->second);
	const Command &root = root_of(tree);

	for (const Option &o : root.options)
		for (const std::string &n : o.names) {
			bool found = false;
			for (const std::string &tag : main.tags)
				found = found || has_token(tag, n);
			if (!found)
				problems.push_back("man/sonic.8: no .TP entry for the global option " + n);
		}

	std::set<std::string> object_pages;
	for (const std::string &object : root.subcommands) {
		const std::string page_name = "sonic-" + object + ".8";
		object_pages.insert(page_name);
		bool listed = false;
		for (const std::string &tag : main.tags)
			listed = listed || starts_with_phrase(tag, object);
		if (!listed)
			problems.push_back("man/sonic.8: no .TP entry for the object " + quoted(object));
		if (main.text.find("sonic-" + object + "(8)") == std::string::npos)
			problems.push_back("man/sonic.8: no reference to sonic-" + object + "(8)");
		if (!pages.count(page_name))
			problems.push_back("man/" + page_name + " is missing (object " + quoted(object) + ")");
	}
	for (const auto &[name, contents] : pages)
		if (name != "sonic.8" && !object_pages.count(name))
			problems.push_back("man/" + name + " documents no object of sonic (stale page?)");

	for (const Command &cmd : tree) {
		if (cmd.path.empty())
			continue;
		auto it = pages.find("sonic-" + cmd.path[0] + ".8");
		if (it == pages.end())
			continue;
		const std::string where = "man/" + it->first + ": ";
		const Page page = parse_roff(it->second);
		// The entries that give this command's grammar.
		std::vector<std::string> grammar;
		for (const std::string &tag : page.tags)
			if (starts_with_phrase(tag, cmd.name()))
				grammar.push_back(tag);
		if (cmd.subcommands.empty() && grammar.empty()) {
			problems.push_back(where + "no .TP entry for " + quoted(cmd.name()));
			continue;
		}
		std::vector<std::string> words;
		for (const Option &o : cmd.options)
			words.insert(words.end(), o.names.begin(), o.names.end());
		words.insert(words.end(), cmd.keywords.begin(), cmd.keywords.end());
		words.insert(words.end(), cmd.args.begin(), cmd.args.end());
		for (const std::string &w : words) {
			bool in_grammar = false;
			for (const std::string &g : grammar)
				in_grammar = in_grammar || has_token(g, w);
			if (!in_grammar)
				problems.push_back(where + "the entry of " + quoted(cmd.name()) + " does not name " + w);
			// "--timeout SECS", "cgroup PATH", or "-j, --json".
			bool described = false;
			for (const std::string &tag : page.tags)
				described = described || starts_with_phrase(tag, w) ||
					    (w[0] == '-' && tag[0] == '-' && has_token(tag, w));
			if (!described)
				problems.push_back(where + "no .TP entry describing " + w + " of " + quoted(cmd.name()));
		}
	}
	return problems;
}

// Every field of `sonic stats accel`, named as in its JSON.
std::vector<std::string> accel_counter_fields()
{
	std::vector<std::string> fields = {"sockets"};
	for (size_t i = 0; i < SONIC_ACCEL_NR_COUNTERS; ++i)
		fields.emplace_back(sonic::bpf::accel_counter_name(i));
	return fields;
}

// Every field of `sonic stats splice`, named as in its JSON.
std::vector<std::string> splice_counter_fields()
{
	std::vector<std::string> fields = {"tunnels", "sockets", "copying"};
	for (size_t i = 0; i < SONIC_SPLICE_NR_COUNTERS; ++i)
		fields.emplace_back(sonic::bpf::splice_counter_name(i));
	return fields;
}

// Every field of `sonic stats steer`, named as in its JSON.
std::vector<std::string> steer_counter_fields()
{
	std::vector<std::string> fields = {"rules", "packets_assigned"};
	for (size_t i = 0; i < SONIC_STEER_NR_COUNTERS; ++i)
		fields.emplace_back(sonic::bpf::steer_counter_name(i));
	return fields;
}

// Every field of `sonic stats fw`, named as in its JSON.
std::vector<std::string> fw_counter_fields()
{
	std::vector<std::string> fields = {"rules", "attachments", "blocklist", "flows"};
	for (size_t i = 0; i < SONIC_FW_NR_COUNTERS; ++i)
		fields.emplace_back(sonic::bpf::fw_counter_name(i));
	return fields;
}

// The counter fields of one family are looked for in that family's own
// member of OUTPUT (".B FAMILY" up to its ".RE"): families share field names
// (sockets, overflows, resumed), so one family's entry must not stand in for
// another's.
Problems check_counters(const std::vector<std::string> &fields, const std::string &stats_page,
			const std::string &family = "accel")
{
	Problems problems;
	const std::string head = ".TP\n.B " + family + "\nThe counters of \\fB" + family + "\\fR";
	const size_t output = stats_page.find(".SH OUTPUT");
	const size_t begin = output == std::string::npos ? output : stats_page.find(head, output);
	const size_t end = begin == std::string::npos ? begin : stats_page.find("\n.RE\n", begin);
	if (end == std::string::npos) {
		problems.push_back("man/sonic-stats.8: OUTPUT has no member " + quoted(family) + " with its counters");
		return problems;
	}
	const Page page = parse_roff(stats_page.substr(begin, end - begin));
	for (const std::string &field : fields) {
		bool described = false;
		for (const std::string &tag : page.tags)
			described = described || tag == field;
		if (!described)
			problems.push_back("man/sonic-stats.8: no .TP entry for the " + family + " counter " + quoted(field));
	}
	return problems;
}

struct Entry {
	std::string path, kind;
	std::vector<std::pair<std::string, std::string>> words; // name, type
};

std::vector<Entry> completion_table(const std::string &contents)
{
	static const std::regex line(R"('([a-z0-9 -]*)\|([a-z]+)\|([^'\n]*)')");
	std::vector<Entry> table;
	for (std::sregex_iterator it(contents.begin(), contents.end(), line), end; it != end; ++it) {
		Entry e{(*it)[1], (*it)[2], {}};
		for (const std::string &w : split_words((*it)[3])) {
			size_t colon = w.find(':');
			e.words.emplace_back(w.substr(0, colon), colon == std::string::npos ? "" : w.substr(colon + 1));
		}
		table.push_back(e);
	}
	return table;
}

// FILE names the completion file CONTENTS came from, for the messages.
Problems check_completion(const std::vector<Command> &tree, const std::string &file, const std::string &contents)
{
	Problems problems;
	const std::vector<Entry> table = completion_table(contents);
	if (table.empty())
		return {file + ": no 'PATH|KIND|WORDS' table found"};

	std::map<std::string, const Command *> by_key;
	for (const Command &cmd : tree)
		by_key[cmd.key()] = &cmd;
	// (path, kind) -> names
	std::map<std::pair<std::string, std::string>, std::set<std::string>> offered;
	static const std::set<std::string> kTypes = {"", "dir", "file", "cgroup"};
	// Or the values accepted, "pem,der,p12": each must be named by the help
	// text of the option (or of the positional arguments, for a keyword).
	static const std::regex kChoices(R"([a-z0-9][a-z0-9_-]*(,[a-z0-9][a-z0-9_-]*)+)");

	for (const Entry &e : table) {
		auto it = by_key.find(e.path);
		if (it == by_key.end()) {
			problems.push_back(file + ": " + quoted(e.path) + " is not a command of sonic");
			continue;
		}
		const Command &cmd = *it->second;
		const std::string what = quoted(cmd.name());
		for (const auto &[name, type] : e.words) {
			offered[{e.path, e.kind}].insert(name);
			const bool choices = std::regex_match(type, kChoices);
			if (!kTypes.count(type) && !choices)
				problems.push_back(file + ": unknown value type " + quoted(type) + " of " + name);
			if (choices) {
				std::string help = cmd.positional_help;
				for (const Option &o : cmd.options)
					if (std::find(o.names.begin(), o.names.end(), name) != o.names.end())
						help = o.description;
				std::string values = type;
				std::replace(values.begin(), values.end(), ',', ' ');
				for (const std::string &value : split_words(values))
					if (!has_token(help, value))
						problems.push_back(file + ": the help of " + name + " of " + what +
								   " does not name the value " + quoted(value));
			}
			auto has = [&](const std::vector<std::string> &v) {
				return std::find(v.begin(), v.end(), name) != v.end();
			};
			auto option = [&](bool takes_value) {
				for (const Option &o : cmd.options)
					if (o.takes_value == takes_value && has(o.names))
						return true;
				return false;
			};
			bool ok = false;
			if (e.kind == "objects")
				ok = cmd.path.empty() && has(cmd.subcommands);
			else if (e.kind == "verbs")
				ok = !cmd.path.empty() && has(cmd.subcommands);
			else if (e.kind == "flags")
				ok = option(false);
			else if (e.kind == "options")
				ok = option(true);
			else if (e.kind == "keywords")
				ok = has(cmd.keywords);
			else if (e.kind == "args")
				ok = has(cmd.args);
			else {
				problems.push_back(file + ": unknown kind " + quoted(e.kind));
				break;
			}
			const std::string singular = e.kind.substr(0, e.kind.size() - 1);
			if (!ok)
				problems.push_back(file + ": " + what + " has no " + singular + " " + quoted(name));
		}
	}

	for (const Command &cmd : tree) {
		const std::string key = cmd.key();
		auto missing = [&](const std::string &kind, const std::string &name) {
			const std::string line = quoted(key + "|" + kind + "|");
			if (!offered[{key, kind}].count(name))
				problems.push_back(file + ": " + line + " lacks " + quoted(name) + " of " + quoted(cmd.name()));
		};
		for (const std::string &sub : cmd.subcommands)
			missing(cmd.path.empty() ? "objects" : "verbs", sub);
		for (const Option &o : cmd.options)
			for (const std::string &n : o.names)
				missing(o.takes_value ? "options" : "flags", n);
		for (const std::string &k : cmd.keywords)
			missing("keywords", k);
		for (const std::string &a : cmd.args)
			missing("args", a);
	}
	return problems;
}

void report(const Problems &problems)
{
	for (const std::string &p : problems)
		FAIL_CHECK(p);
}

bool mentions(const Problems &problems, const std::string &a, const std::string &b)
{
	for (const std::string &p : problems)
		if (p.find(a) != std::string::npos && p.find(b) != std::string::npos)
			return true;
	return false;
}

} // namespace

TEST_CASE("the walk sees the whole command tree", "[docs]")
{
	auto tree = command_tree();
	const Command &root = root_of(tree);
	for (const char *object : {"prog", "accel", "stats"})
		CHECK(std::find(root.subcommands.begin(), root.subcommands.end(), object) != root.subcommands.end());
	bool unload_force = false, enable_cgroup = false, stats_accel = false, root_bpffs = false, fw_add_words = false;
	for (const Command &cmd : tree) {
		for (const Option &o : cmd.options) {
			const bool force = o.names == std::vector<std::string>{"--force"};
			const bool bpffs = o.names == std::vector<std::string>{"--bpffs"};
			unload_force |= cmd.name() == "sonic prog unload" && force && !o.takes_value;
			root_bpffs |= cmd.path.empty() && bpffs && o.takes_value;
		}
		enable_cgroup |= cmd.name() == "sonic accel enable" &&
				 cmd.keywords == std::vector<std::string>{"cgroup", "ports", "scope"};
		stats_accel |= cmd.name() == "sonic stats" &&
			       cmd.args == std::vector<std::string>{"accel", "splice", "steer", "fw", "flows", "all"};
		fw_add_words |= cmd.name() == "sonic fw add" && cmd.args == std::vector<std::string>{"drop", "pass"} &&
				std::find(cmd.keywords.begin(), cmd.keywords.end(), "tcp-flags") != cmd.keywords.end();
	}
	CHECK(unload_force);
	CHECK(root_bpffs);
	CHECK(enable_cgroup);
	CHECK(stats_accel);
	CHECK(fw_add_words);
}

TEST_CASE("man pages document every object, verb, option and keyword", "[docs]")
{
	report(check_man(command_tree(), man_pages()));
}

TEST_CASE("sonic-stats(8) describes every counter", "[docs]")
{
	auto page = read_source("man/sonic-stats.8");
	REQUIRE(page);
	report(check_counters(accel_counter_fields(), *page));
	report(check_counters(splice_counter_fields(), *page, "splice"));
	report(check_counters(steer_counter_fields(), *page, "steer"));
	report(check_counters(fw_counter_fields(), *page, "fw"));
}

TEST_CASE("each completion file offers exactly the command tree", "[docs]")
{
	auto tree = command_tree();
	for (const char *file : kCompletionFiles) {
		auto contents = read_source(file);
		if (!contents) {
			FAIL_CHECK(std::string(file) + " is missing");
			continue;
		}
		report(check_completion(tree, file, *contents));
	}
}

TEST_CASE("roff text is read as a reader sees it", "[docs]")
{
	Page p = parse_roff(".\\\" comment\n.TP\n\\fBsonic prog unload\\fR [\\fB\\-\\-force\\fR]\ntext\n"
			    ".TP\n.BR sonic\\-prog (8)\n.TP 4\n\\fB\\-j\\fR, \\fB\\-\\-json\\fR\n");
	REQUIRE(p.tags.size() == 3);
	CHECK(p.tags[0] == "sonic prog unload [--force]");
	CHECK(p.tags[1] == "sonic-prog(8)");
	CHECK(p.tags[2] == "-j, --json");
	CHECK(starts_with_phrase(p.tags[0], "sonic prog unload"));
	CHECK_FALSE(starts_with_phrase(p.tags[0], "sonic prog unl"));
	CHECK(has_token(p.tags[2], "--json"));
	CHECK_FALSE(has_token(p.tags[2], "--js"));
}

// The checks above must fail when an entry goes missing; these break the
// real files in memory, the way a forgetful change would, and expect the
// checks to name what is missing.
TEST_CASE("the checks name what is missing or stale", "[docs]")
{
	auto tree = command_tree();
	const Command *verb = nullptr; // the first verb that has an option
	for (const Command &cmd : tree)
		if (cmd.path.size() == 2 && !cmd.options.empty() && !verb)
			verb = &cmd;
	REQUIRE(verb);
	const std::string option = verb->options.front().names.back();
	const std::string obj = verb->path[0], v = verb->path[1];

	SECTION("man pages")
	{
		auto pages = man_pages();
		REQUIRE(check_man(tree, pages).empty());
		const std::string page = "sonic-" + obj + ".8";

		auto broken = pages;
		broken.erase(page);
		CHECK(mentions(check_man(tree, broken), page, "missing"));

		broken = pages;
		broken["sonic-nosuchobject.8"] = ".TH X 8\n";
		CHECK(mentions(check_man(tree, broken), "sonic-nosuchobject.8", "stale"));

		// The verb's entry renamed: the verb is undocumented.
		broken = pages;
		std::string &text = broken[page];
		const std::string entry = "\\fBsonic " + obj + " " + v + "\\fR";
		REQUIRE(text.find(entry) != std::string::npos);
		for (size_t at; (at = text.find(entry)) != std::string::npos;)
			text.replace(at, entry.size(), "\\fBsonic " + obj + " renamed\\fR");
		CHECK(mentions(check_man(tree, broken), "sonic " + obj + " " + v, "no .TP entry"));

		// The option dropped from every line: neither in the grammar nor described.
		broken = pages;
		std::string roff_option = option;
		for (size_t at = 0; (at = roff_option.find('-', at)) != std::string::npos; at += 2)
			roff_option.replace(at, 1, "\\-");
		std::string &text2 = broken[page];
		for (size_t at; (at = text2.find(roff_option)) != std::string::npos;)
			text2.replace(at, roff_option.size(), "\\-\\-gone");
		Problems problems = check_man(tree, broken);
		CHECK(mentions(problems, "does not name " + option, "sonic " + obj + " " + v));
		CHECK(mentions(problems, "no .TP entry describing " + option, "sonic " + obj + " " + v));

		// An object missing from sonic.8.
		broken = pages;
		std::string &main = broken["sonic.8"];
		const std::string ref = ".BR sonic\\-" + obj + " (8)";
		for (size_t at; (at = main.find(ref)) != std::string::npos;)
			main.erase(at, ref.size());
		CHECK(mentions(check_man(tree, broken), "sonic.8", "sonic-" + obj + "(8)"));

		// A counter without its entry.
		const std::string counter = accel_counter_fields().back();
		std::string stats_page = pages.at("sonic-stats.8");
		const std::string counter_tag = ".TP\n.B " + counter + "\n";
		REQUIRE(stats_page.find(counter_tag) != std::string::npos);
		stats_page.erase(stats_page.find(counter_tag), counter_tag.size());
		CHECK(mentions(check_counters(accel_counter_fields(), stats_page), "sonic-stats.8", quoted(counter)));

		// A global option missing from sonic.8.
		broken = pages;
		std::string &main2 = broken["sonic.8"];
		const std::string json = "\\fB\\-\\-json\\fR";
		REQUIRE(main2.find(json) != std::string::npos);
		for (size_t at; (at = main2.find(json)) != std::string::npos;)
			main2.erase(at, json.size());
		CHECK(mentions(check_man(tree, broken), "sonic.8", "--json"));
	}

	SECTION("completion files")
	{
		for (const char *file : kCompletionFiles) {
			INFO(file);
			const std::string contents = *read_source(file);
			REQUIRE(check_completion(tree, file, contents).empty());

			// The verb dropped from its object's line.
			const std::regex verb_word("('" + obj + R"(\|verbs\|[^']*)\b)" + v + R"(\b)");
			std::string broken = std::regex_replace(contents, verb_word, "$1");
			REQUIRE(broken != contents);
			CHECK(mentions(check_completion(tree, file, broken), "lacks '" + v + "'", "sonic " + obj));

			// The option dropped from its verb's line.
			const std::regex option_word("('" + obj + " " + v + R"(\|[a-z]+\|[^']*) ?)" + option +
						     R"((:[a-z]+)?(?=[ ']))");
			broken = std::regex_replace(contents, option_word, "$1");
			REQUIRE(broken != contents);
			CHECK(mentions(check_completion(tree, file, broken), "lacks '" + option + "'",
				       "sonic " + obj + " " + v));

			// An object dropped from the list of objects.
			broken = std::regex_replace(contents, std::regex(R"(('\|objects\|[^']*)\b)" + obj + R"(\b)"), "$1");
			REQUIRE(broken != contents);
			CHECK(mentions(check_completion(tree, file, broken), "lacks '" + obj + "'", "'sonic'"));

			// A global option dropped.
			broken = std::regex_replace(contents, std::regex(R"(('\|flags\|[^']*) --json)"), "$1");
			REQUIRE(broken != contents);
			CHECK(mentions(check_completion(tree, file, broken), "lacks '--json'", "'sonic'"));

			// A verb the code does not have.
			broken = std::regex_replace(contents, std::regex("'" + obj + R"(\|verbs\|)"),
						    "'" + obj + "|verbs|frobnicate ");
			REQUIRE(broken != contents);
			CHECK(mentions(check_completion(tree, file, broken), "no verb 'frobnicate'", "sonic " + obj));

			// A value the code does not name.
			broken = contents + "\n'|options|--state-dir:frobnicate,gizmo'\n";
			CHECK(mentions(check_completion(tree, file, broken), "--state-dir", "value 'frobnicate'"));

			// A flag offered as an option with a value.
			broken = std::regex_replace(contents, std::regex(R"('\|flags\|)"), "'|options|--quiet'\n'|flags|");
			CHECK(mentions(check_completion(tree, file, broken), "no option '--quiet'", "'sonic'"));
		}
	}
}
