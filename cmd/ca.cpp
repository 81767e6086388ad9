// sonic ca { init | show | export | trust }
#include "cli.hpp"

#include "out/error.hpp"
#include "out/log.hpp"
#include "sys/fs.hpp"
#include "tls/ca.hpp"
#include "tls/state.hpp"
#include "tls/trust.hpp"

#include <ctime>
#include <iostream>
#include <unistd.h>

namespace sonic::cmd {

namespace {

struct InitArgs {
	std::string key_type = "ecdsa-p256";
	std::string cn = "sonic CA";
	int days = 3650;
	bool force = false;
};

out::Value ca_value(const tls::Ca &ca, const std::string &path)
{
	return {{"path", path},
		{"subject", ca.subject()},
		{"key_type", ca.key_type()},
		{"fingerprint_sha256", ca.fingerprint()},
		{"serial", ca.serial()},
		{"not_before", out::iso_time(ca.not_before())},
		{"not_after", out::iso_time(ca.not_after())}};
}

int init(Cli &cli, const InitArgs &args)
{
	auto type = tls::parse_key_type(args.key_type);
	if (!type)
		throw usage_error("ca init", "--key-type must be ecdsa-p256, rsa-2048 or rsa-4096", args.key_type);
	tls::CaOptions options{*type, args.cn, args.days};
	tls::CaInitResult r = tls::ca_init(cli.g.state_dir, options, args.force);
	out::Value v = {{"changed", r.changed}};
	v.update(ca_value(*r.ca, r.path));
	if (args.force)
		v["leaves_removed"] = r.leaves_removed;
	if (r.changed && args.force && tls::is_trusted(*r.ca) == false) {
		auto store = tls::detect_trust_store();
		if (store && sys::try_read_file(store->file))
			log::warn("the system trust store holds the previous CA: run `sonic ca trust` to replace it");
	}
	cli.report(v);
	return 0;
}

int show(Cli &cli)
{
	auto ca = tls::Ca::load(cli.g.state_dir);
	out::Value v = ca_value(*ca, tls::StatePaths(cli.g.state_dir).ca_file);
	v["expired"] = std::time(nullptr) >= ca->not_after();
	auto trusted = tls::is_trusted(*ca);
	v["trusted"] = trusted ? out::Value(*trusted) : out::Value();
	cli.print(v);
	return 0;
}

int export_ca(Cli &cli, const std::string &format_name, const std::string &out_file)
{
	auto format = tls::parse_export_format(format_name);
	if (!format)
		throw usage_error("ca export", "--format must be pem, der or p12", format_name);
	bool binary = *format != tls::ExportFormat::Pem;
	if (out_file.empty() && binary && cli.format() == out::Format::Text && isatty(STDOUT_FILENO))
		throw usage_error("ca export", std::string("will not write ") + format_name + " to a terminal")
			.with_hint("give --out FILE or redirect the output");
	auto ca = tls::Ca::load(cli.g.state_dir);
	std::string data = tls::ca_export(*ca, *format);
	if (out_file.empty()) {
		if (cli.format() == out::Format::Text) {
			std::cout << data << std::flush;
			return 0;
		}
		out::Value v = {{"format", format_name}, {"fingerprint_sha256", ca->fingerprint()}};
		if (binary)
			v["base64"] = tls::base64(data);
		else
			v["pem"] = data;
		cli.print(v);
		return 0;
	}
	auto existing = sys::try_read_file(out_file);
	bool changed = !existing || !tls::export_matches(*existing, *ca, *format);
	if (changed)
		sys::write_file_atomic(out_file, data, 0644, true);
	cli.report({{"changed", changed},
		    {"path", out_file},
		    {"format", format_name},
		    {"fingerprint_sha256", ca->fingerprint()}});
	return 0;
}

int trust(Cli &cli, bool remove)
{
	tls::TrustResult r;
	if (remove) {
		r = tls::trust_remove();
	} else {
		auto ca = tls::Ca::load(cli.g.state_dir);
		r = tls::trust_install(*ca);
	}
	cli.report({{"changed", r.changed}, {"trusted", !remove}, {"layout", r.store.layout}, {"path", r.store.file}});
	return 0;
}

} // namespace

void add_ca(Cli &cli)
{
	CLI::App *ca = cli.object("ca", "sonic's certificate authority: init, show, export, trust");

	auto init_args = std::make_shared<InitArgs>();
	CLI::App *init_cmd = cli.verb(ca, "init",
				      "Create the CA under <state-dir>/ca (an existing one is kept unless --force)",
				      [&cli, init_args] { return init(cli, *init_args); });
	init_cmd->add_option("--key-type", init_args->key_type, "CA key: ecdsa-p256, rsa-2048 or rsa-4096")
		->capture_default_str();
	init_cmd->add_option("--cn", init_args->cn, "The CA's common name")->capture_default_str();
	init_cmd->add_option("--days", init_args->days, "Validity in days")->capture_default_str();
	init_cmd->add_flag("--force", init_args->force, "Replace an existing CA and empty the leaf cache");

	cli.verb(ca, "show", "Show the CA: subject, key type, SHA-256 fingerprint, validity, trust",
		 [&cli] { return show(cli); });

	auto format = std::make_shared<std::string>("pem");
	auto out_file = std::make_shared<std::string>();
	CLI::App *export_cmd =
		cli.verb(ca, "export", "Print or write the CA certificate (never its key) for clients to trust",
			 [&cli, format, out_file] { return export_ca(cli, *format, *out_file); });
	export_cmd->add_option("--format", *format, "pem, der (the .cer Android wants) or p12 (browsers, Windows)")
		->capture_default_str();
	export_cmd->add_option("--out", *out_file, "Write to FILE instead of standard output");

	auto remove = std::make_shared<bool>(false);
	CLI::App *trust_cmd =
		cli.verb(ca, "trust", "Install the CA into the system trust store (Debian or RHEL layout)",
			 [&cli, remove] { return trust(cli, *remove); });
	trust_cmd->add_flag("--remove", *remove, "Take sonic's CA out of the system trust store");
}

} // namespace sonic::cmd
