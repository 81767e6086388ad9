// sonic cert { mint NAME... | list | show NAME | purge [NAME... | --expired | --all] }
#include "cli.hpp"

#include "out/error.hpp"
#include "out/log.hpp"
#include "tls/ca.hpp"
#include "tls/leaf_dir.hpp"
#include "tls/names.hpp"
#include "tls/state.hpp"
#include "tls/store.hpp"

#include <ctime>
#include <iostream>

namespace sonic::cmd {

namespace {

out::Value time_value(int64_t t) { return t ? out::Value(out::iso_time(t)) : out::Value(); }

std::vector<tls::HostName> parse_names(const std::vector<std::string> &args)
{
	std::vector<tls::HostName> names;
	for (const std::string &a : args)
		names.push_back(tls::parse_name(a));
	return names;
}

int mint(Cli &cli, const std::vector<std::string> &args, int days)
{
	if (days < 1 || days > tls::kMaxLeafDays)
		throw usage_error("cert mint", "--days must be 1 to 397", std::to_string(days));
	std::vector<tls::HostName> names = parse_names(args);
	auto ca = tls::Ca::load(cli.g.state_dir);
	tls::StoreOptions options;
	options.dir = tls::StatePaths(cli.g.state_dir).certs_dir;
	options.days = days;
	options.warn_write_errors = false;
	tls::CertStore store(ca, options);
	tls::LeafDir dir(options.dir);
	bool changed = false;
	out::Value rows = out::Value::array();
	for (const tls::HostName &name : names) {
		tls::Fetched f = store.fetch(name.text);
		changed |= f.source == tls::LeafSource::Minted;
		rows.push_back({{"name", f.leaf->name()},
				{"minted", f.source == tls::LeafSource::Minted},
				{"not_after", out::iso_time(f.leaf->not_after())},
				{"path", dir.path_of(f.leaf->name())}});
	}
	store.flush();
	cli.report({{"changed", changed}, {"certificates", rows}});
	return 0;
}

int list(Cli &cli)
{
	auto ca = tls::Ca::load(cli.g.state_dir);
	tls::LeafDir dir(tls::StatePaths(cli.g.state_dir).certs_dir);
	out::Value rows = out::Value::array();
	for (const tls::LeafFile &f : dir.list(*ca, std::time(nullptr), 0)) {
		if (f.state == tls::LeafState::Corrupt)
			log::warn("corrupt leaf certificate " + f.path + ": " + f.problem);
		rows.push_back({{"name", f.name},
				{"state", tls::leaf_state_name(f.state)},
				{"not_before", time_value(f.not_before)},
				{"not_after", time_value(f.not_after)}});
	}
	cli.print({{"directory", dir.dir()}, {"certificates", rows}});
	return 0;
}

int show(Cli &cli, const std::string &arg)
{
	tls::HostName name = tls::parse_name(arg);
	auto ca = tls::Ca::load(cli.g.state_dir);
	tls::LeafDir dir(tls::StatePaths(cli.g.state_dir).certs_dir);
	auto text = dir.read(name.text);
	if (!text)
		throw usage_error("cert show", "no leaf certificate for this name", name.text)
			.with_hint("`sonic cert mint " + name.text + "` makes one");
	std::string path = dir.path_of(name.text);
	tls::Crt crt;
	try {
		crt = tls::import_crt(*text, GNUTLS_X509_FMT_PEM, path);
	} catch (const Error &e) {
		throw env_error("cert show", "the leaf certificate file is corrupt: " + e.reason(), path)
			.with_hint("`sonic cert purge " + name.text + "` removes it; the next lookup mints a new one");
	}
	std::string pem = tls::export_crt(crt.get(), GNUTLS_X509_FMT_PEM);
	if (cli.format() == out::Format::Text) {
		std::cout << pem << std::flush;
		return 0;
	}
	auto f = dir.describe(name.text, *ca, std::time(nullptr), 0);
	cli.print({{"name", name.text},
		   {"names", tls::alt_names(crt.get())},
		   {"state", tls::leaf_state_name(f ? f->state : tls::LeafState::Corrupt)},
		   {"subject", tls::subject_dn(crt.get())},
		   {"issuer", tls::issuer_dn(crt.get())},
		   {"serial", tls::serial_hex(crt.get())},
		   {"key_type", tls::key_type(crt.get())},
		   {"not_before", out::iso_time(gnutls_x509_crt_get_activation_time(crt.get()))},
		   {"not_after", out::iso_time(gnutls_x509_crt_get_expiration_time(crt.get()))},
		   {"fingerprint_sha256", tls::fingerprint_sha256(crt.get())},
		   {"path", path},
		   {"pem", pem}});
	return 0;
}

bool unusable(tls::LeafState state)
{
	return state == tls::LeafState::Expired || state == tls::LeafState::OtherCa || state == tls::LeafState::Corrupt;
}

int purge(Cli &cli, const std::vector<std::string> &args, bool expired, bool all)
{
	if (static_cast<int>(!args.empty()) + static_cast<int>(expired) + static_cast<int>(all) != 1)
		throw usage_error("cert purge", "give NAMEs, --expired or --all (one of them)").with_usage();
	tls::LeafDir dir(tls::StatePaths(cli.g.state_dir).certs_dir);
	out::Value removed = out::Value::array();
	if (all) {
		for (const std::string &name : dir.remove_all())
			removed.push_back(name);
	} else if (expired) {
		auto ca = tls::Ca::load(cli.g.state_dir);
		for (const tls::LeafFile &f : dir.list(*ca, std::time(nullptr), 0))
			if (unusable(f.state) && unlink(f.path.c_str()) == 0)
				removed.push_back(f.name);
	} else {
		for (const tls::HostName &name : parse_names(args))
			if (dir.remove(name.text))
				removed.push_back(name.text);
	}
	cli.report({{"changed", !removed.empty()}, {"removed", removed}});
	return 0;
}

} // namespace

void add_cert(Cli &cli)
{
	CLI::App *cert = cli.object("cert", "Leaf certificates minted by sonic's CA: mint, list, show, purge");

	auto mint_names = std::make_shared<std::vector<std::string>>();
	auto days = std::make_shared<int>(tls::kDefaultLeafDays);
	CLI::App *mint_cmd = cli.verb(cert, "mint",
				      "Mint a leaf per NAME (DNS name, *.wildcard, IPv4 or IPv6 address) into the "
				      "cache; a valid cached leaf is kept",
				      [&cli, mint_names, days] { return mint(cli, *mint_names, *days); });
	mint_cmd->add_option("NAME", *mint_names, "DNS names, *.wildcards, IPv4 or IPv6 addresses")->required();
	mint_cmd->add_option("--days", *days, "Validity of new leaves in days (at most 397)")->capture_default_str();

	cli.verb(cert, "list", "List the cached leaves: name, state, validity", [&cli] { return list(cli); });

	auto show_name = std::make_shared<std::string>();
	CLI::App *show_cmd = cli.verb(cert, "show", "Print a cached leaf's certificate (PEM; -j: its fields too)",
				      [&cli, show_name] { return show(cli, *show_name); });
	show_cmd->add_option("NAME", *show_name, "The leaf's name")->required();

	auto purge_names = std::make_shared<std::vector<std::string>>();
	auto expired = std::make_shared<bool>(false);
	auto all = std::make_shared<bool>(false);
	CLI::App *purge_cmd =
		cli.verb(cert, "purge", "Remove cached leaves: the NAMEs given, the unusable ones, or all",
			 [&cli, purge_names, expired, all] { return purge(cli, *purge_names, *expired, *all); });
	purge_cmd->add_option("NAME", *purge_names, "Names of leaves to remove");
	purge_cmd->add_flag("--expired", *expired,
			    "Remove expired leaves and those no longer usable (corrupt, or from a previous CA)");
	purge_cmd->add_flag("--all", *all, "Remove every cached leaf");
}

} // namespace sonic::cmd
