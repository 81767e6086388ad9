#include "apply/apply.hpp"

#include "config/toml_guard.hpp"
#include "config/toml_reader.hpp"
#include "sys/fs.hpp"
#include "net/addr.hpp"
#include "net/local.hpp"
#include "net/ports.hpp"
#include "out/error.hpp"
#include "sys/cgroup.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <map>
#include <net/if.h>
#include <toml++/toml.h>

namespace sonic::apply {

namespace {

// ---- reading the file --------------------------------------------------

// The shared typed reads, and the words of the data plane's specs: ports,
// CIDRs, marks.
class Reader : public config::TomlReader {
public:
	explicit Reader(std::string source) : TomlReader(std::move(source), "apply") {}

	// A string or a non-negative integer, as text (mark = 0x5300, table = 5300).
	std::optional<std::string> word(const toml::table &t, std::string_view key) const
	{
		const toml::node *n = t.get(key);
		if (!n)
			return std::nullopt;
		if (n->is_integer() && *n->value<int64_t>() >= 0)
			return std::to_string(*n->value<int64_t>());
		if (!n->is_string())
			fail(*n, "'" + std::string(key) + "' must be a string or a number");
		return n->value<std::string>();
	}

	// Ports as 443, "80,443", "8000-8100" or [80, "8000-8100"]: the port
	// list text, checked here so that an error names the key's line.
	std::optional<std::string> ports(const toml::table &t, std::string_view key) const
	{
		const toml::node *n = t.get(key);
		if (!n)
			return std::nullopt;
		std::string text;
		if (const toml::array *a = n->as_array()) {
			if (a->empty())
				fail(*n, "'" + std::string(key) + "' is empty");
			for (const toml::node &item : *a) {
				auto one = port_word(item, key);
				text += (text.empty() ? "" : ",") + one;
			}
		} else {
			text = port_word(*n, key);
		}
		try {
			net::parse_port_list(text);
		} catch (const Error &e) {
			fail(*n, e);
		}
		return text;
	}

	std::optional<std::string> cidr(const toml::table &t, std::string_view key) const
	{
		auto text = string(t, key);
		if (text) {
			try {
				net::parse_cidr(*text);
			} catch (const Error &e) {
				fail(*t.get(key), e);
			}
		}
		return text;
	}

private:
	std::string port_word(const toml::node &n, std::string_view key) const
	{
		if (n.is_integer()) {
			int64_t v = *n.value<int64_t>();
			if (v < 1 || v > 65535)
				fail(n, "'" + std::string(key) + "': port " + std::to_string(v) + " is not between 1 and 65535");
			return std::to_string(v);
		}
		if (!n.is_string())
			fail(n, "'" + std::string(key) + "' must hold ports: 443, \"80,443\" or [80, \"8000-8100\"]");
		return *n.value<std::string>();
	}
};

AccelWant read_accel(const Reader &r, const toml::table &t)
{
	r.check_keys(t, {"scope", "cgroups", "ports"}, "[accel]");
	AccelWant w;
	w.where = r.at(t);
	if (auto scope = r.string(t, "scope")) {
		auto parsed = bpf::parse_accel_scope(*scope);
		if (!parsed)
			r.fail(*t.get("scope"), "scope must be \"all\" or \"proxy\", not '" + *scope + "'");
		w.scope = *parsed;
	}
	if (auto ports = r.ports(t, "ports"))
		w.ports = net::parse_port_list(*ports);
	if (const toml::node *n = t.get("cgroups")) {
		const toml::array *a = n->as_array();
		if (!a || a->empty())
			r.fail(*n, "cgroups must be a list of cgroup v2 directories, e.g. [\"/sys/fs/cgroup/app\"]");
		for (const toml::node &item : *a) {
			if (!item.is_string() || item.value<std::string>()->empty())
				r.fail(item, "cgroups must be a list of cgroup v2 directories");
			w.cgroups.push_back({*item.value<std::string>(), 0, r.at(item)});
		}
	} else {
		w.cgroups.push_back({"", 0, w.where}); // the cgroup v2 root
	}
	return w;
}

TproxyWant read_tproxy(const Reader &r, const toml::table &t)
{
	r.check_keys(t, {"dev", "cgroup", "proto", "dport", "dst", "to", "mark", "table"}, "[[tproxy]]");
	bpf::SteerWords w;
	w.dev = r.string(t, "dev");
	w.cgroup = r.string(t, "cgroup");
	w.proto = r.string(t, "proto");
	w.dport = r.ports(t, "dport");
	w.dst = r.cidr(t, "dst");
	w.to = r.string(t, "to");
	w.mark = r.word(t, "mark");
	w.table = r.word(t, "table");
	TproxyWant want;
	want.where = r.at(t);
	try {
		want.spec = bpf::parse_steer_spec(w);
	} catch (const Error &e) {
		r.fail(t, e);
	}
	return want;
}

CaWant read_ca(const Reader &r, const toml::table &t)
{
	r.check_keys(t, {"key_type"}, "[ca]");
	CaWant w;
	w.where = r.at(t);
	if (auto type = r.string(t, "key_type")) {
		auto parsed = tls::parse_key_type(*type);
		if (!parsed)
			r.fail(*t.get("key_type"), "key_type must be ecdsa-p256, rsa-2048 or rsa-4096, not '" + *type + "'");
		w.key_type = *parsed;
	}
	return w;
}

FwAttachWant read_fw_attach(const Reader &r, const toml::table &t)
{
	r.check_keys(t, {"dev", "mode"}, "[[fw_attach]]");
	FwAttachWant w;
	w.where = r.at(t);
	auto dev = r.string(t, "dev");
	if (!dev || dev->empty() || dev->size() >= IF_NAMESIZE || dev->find('/') != std::string::npos)
		r.fail(t, "[[fw_attach]] needs dev = \"IFACE\"");
	w.dev = *dev;
	if (auto mode = r.string(t, "mode")) {
		if (*mode == "native")
			w.mode = bpf::XdpMode::Native;
		else if (*mode == "generic")
			w.mode = bpf::XdpMode::Generic;
		else
			r.fail(*t.get("mode"), "mode must be \"native\" or \"generic\", not '" + *mode + "'");
	}
	return w;
}

FwWant read_fw(const Reader &r, const toml::table &t)
{
	r.check_keys(t, {"dev", "action", "rate", "burst", "src", "dst", "proto", "dport", "tcp_flags"}, "[[fw]]");
	std::vector<std::string> words;
	auto add = [&](const char *word, const std::optional<std::string> &value) {
		if (value) {
			words.push_back(word);
			words.push_back(*value);
		}
	};
	add("dev", r.string(t, "dev"));
	auto action = r.string(t, "action");
	auto rate = r.string(t, "rate");
	if (action && *action == "limit") {
		if (!rate)
			r.fail(t, "action \"limit\" needs rate = \"N/s\", \"N/m\" or \"N/h\"");
		add("limit", rate);
	} else if (action) {
		if (*action != "drop" && *action != "pass")
			r.fail(*t.get("action"), "action must be \"drop\", \"pass\" or \"limit\", not '" + *action + "'");
		if (rate)
			r.fail(*t.get("rate"), "rate goes with action = \"limit\" only");
		words.push_back(*action);
	}
	add("burst", r.word(t, "burst"));
	add("src", r.cidr(t, "src"));
	add("dst", r.cidr(t, "dst"));
	add("proto", r.string(t, "proto"));
	add("dport", r.ports(t, "dport"));
	add("tcp-flags", r.string(t, "tcp_flags"));
	FwWant w;
	w.where = r.at(t);
	try {
		w.spec = bpf::parse_fw_rule(words);
	} catch (const Error &e) {
		r.fail(t, e);
	}
	return w;
}

// Two items the file says twice (or that contradict each other).
template <class T, class Same>
void refuse_duplicates(const Reader &r, const std::vector<T> &items, Same same, const std::string &what)
{
	for (size_t i = 0; i < items.size(); ++i)
		for (size_t j = 0; j < i; ++j)
			if (same(items[i], items[j]))
				throw usage_error("apply", items[i].where + ": " + what + " as at " + items[j].where);
	(void)r;
}

Desired build(const toml::table &root, const std::string &source)
{
	Reader r(source);
	r.check_keys(root, {"accel", "tproxy", "ca", "fw_attach", "fw"}, "the file");
	Desired d;
	d.source = source;
	if (const toml::table *t = r.table(root, "accel"))
		d.accel = read_accel(r, *t);
	for (const toml::table *t : r.tables(root, "tproxy"))
		d.tproxy.push_back(read_tproxy(r, *t));
	if (const toml::table *t = r.table(root, "ca"))
		d.ca = read_ca(r, *t);
	for (const toml::table *t : r.tables(root, "fw_attach"))
		d.fw_attach.push_back(read_fw_attach(r, *t));
	for (const toml::table *t : r.tables(root, "fw"))
		d.fw.push_back(read_fw(r, *t));

	if (d.accel)
		refuse_duplicates(r, d.accel->cgroups, [](auto &a, auto &b) { return a.path == b.path; },
				  "the same cgroup");
	refuse_duplicates(r, d.fw_attach, [](auto &a, auto &b) { return a.dev == b.dev; }, "the same interface");
	refuse_duplicates(r, d.fw, [](auto &a, auto &b) { return a.spec.same_match(b.spec); },
			  "the same match (dev, src, dst, proto, dport, tcp_flags)");
	refuse_duplicates(r, d.tproxy,
			  [](auto &a, auto &b) {
				  return a.spec.kind == b.spec.kind && a.spec.where == b.spec.where &&
					 a.spec.family() == b.spec.family() && a.spec.dst == b.spec.dst &&
					 a.spec.ports == b.spec.ports;
			  },
			  "the same interface or cgroup, destination and ports");
	return d;
}

// ---- comparing ---------------------------------------------------------

std::string accel_text(const std::optional<std::string> &cgroup, const bpf::PortFilter &ports, bpf::AccelScope scope)
{
	std::string s = "accel enable";
	if (cgroup)
		s += " cgroup " + *cgroup;
	if (ports)
		s += " ports " + net::format_port_list(*ports);
	return s + " scope " + std::string(bpf::accel_scope_name(scope));
}

std::string fw_attach_text(const std::string &dev, const std::optional<bpf::XdpMode> &mode)
{
	std::string s = "fw attach dev " + dev;
	if (mode)
		s += " mode " + std::string(bpf::xdp_mode_name(*mode));
	return s;
}

bool same_rule(const bpf::SteerRule &a, const bpf::SteerRule &b)
{
	return a.kind == b.kind && a.netns == b.netns && a.scope == b.scope && a.family == b.family &&
	       a.ports == b.ports && a.dst == b.dst && a.to == b.to && a.mark == b.mark && a.table == b.table;
}

// Whether adding WANT would conflict with HAVE (same place, destination,
// overlapping ports): HAVE must go first.
bool steer_overlaps(const bpf::SteerRule &want, const bpf::SteerRule &have)
{
	if (want.kind != have.kind || want.netns != have.netns || want.scope != have.scope ||
	    want.family != have.family || want.dst != have.dst)
		return false;
	for (const auto &x : want.ports)
		for (const auto &y : have.ports)
			if (x.first <= y.last && y.first <= x.last)
				return true;
	return false;
}

// The SPEC `tproxy del` takes for a rule the kernel holds.
bpf::SteerSpec spec_of(const bpf::SteerRule &r)
{
	bpf::SteerSpec s;
	s.kind = r.kind;
	s.where = r.where;
	s.ports = r.ports;
	s.dst = r.dst;
	s.to = r.to;
	if (r.kind == bpf::SteerKind::Dev) {
		s.mark = r.mark;
		s.table = r.table;
	}
	return s;
}

Action tproxy_del(const bpf::SteerRule &r, std::string why)
{
	Action a;
	a.op = Op::TproxyDel;
	a.steer = spec_of(r);
	a.text = "tproxy del " + bpf::steer_rule_text(r);
	a.why = std::move(why);
	return a;
}

Action fw_del(const bpf::FwRuleSpec &spec, std::string why)
{
	Action a;
	a.op = Op::FwDel;
	a.fw = spec;
	a.text = "fw del " + bpf::fw_rule_text(spec);
	a.why = std::move(why);
	return a;
}

void plan_ca(const Desired &d, const Current &c, Plan &p)
{
	if (!d.ca)
		return;
	if (!c.ca_key_type) {
		Action a;
		a.op = Op::CaInit;
		a.key_type = d.ca->key_type;
		a.text = std::string("ca init --key-type ") + tls::key_type_name(d.ca->key_type);
		a.why = "no CA";
		p.actions.push_back(a);
	} else if (*c.ca_key_type != tls::key_type_name(d.ca->key_type)) {
		p.notes.push_back(d.ca->where + ": the CA's key is " + *c.ca_key_type + ", the file says " +
				  tls::key_type_name(d.ca->key_type) +
				  "; a CA is never replaced by apply (sonic ca init --force does, and makes every "
				  "client that trusts the old one refuse its leaves)");
	}
}

void plan_accel(const Desired &d, const Current &c, bool prune, Plan &p)
{
	std::vector<Action> adds;
	std::vector<bool> wanted(c.accel.size(), false);
	if (d.accel) {
		for (const AccelCgroupWant &w : d.accel->cgroups) {
			Action a;
			a.op = Op::AccelEnable;
			if (!w.path.empty())
				a.cgroup = w.path;
			a.cgroup_id = w.id;
			a.ports = d.accel->ports;
			a.scope = d.accel->scope;
			a.text = accel_text(a.cgroup, a.ports, a.scope);
			auto have = std::find_if(c.accel.begin(), c.accel.end(),
						 [&](const bpf::AccelCgroup &h) { return h.cgroup_id == w.id; });
			if (have == c.accel.end()) {
				a.why = "not enabled";
				adds.push_back(a);
				continue;
			}
			wanted[static_cast<size_t>(have - c.accel.begin())] = true;
			if (have->ports != a.ports || have->scope != a.scope) {
				a.why = have->ports != a.ports ? "ports differ" : "scope differs";
				adds.push_back(a);
			}
		}
	}
	if (prune)
		for (size_t i = 0; i < c.accel.size(); ++i) {
			if (wanted[i])
				continue;
			const bpf::AccelCgroup &h = c.accel[i];
			if (h.path.empty()) {
				p.notes.push_back("accel: cgroup id " + std::to_string(h.cgroup_id) +
						  " is gone; `sonic accel disable cgroup PATH` of a removed cgroup cleans it");
				continue;
			}
			Action a;
			a.op = Op::AccelDisable;
			a.cgroup = h.path;
			a.cgroup_id = h.cgroup_id;
			a.text = "accel disable cgroup " + h.path;
			a.why = "not in the file";
			p.actions.push_back(a);
		}
	p.actions.insert(p.actions.end(), adds.begin(), adds.end());
}

void plan_fw(const Desired &d, const Current &c, bool prune, Plan &p)
{
	// Attachments.
	std::vector<Action> attach;
	std::vector<bool> attach_wanted(c.fw_attach.size(), false);
	for (const FwAttachWant &w : d.fw_attach) {
		auto have = std::find_if(c.fw_attach.begin(), c.fw_attach.end(), [&](const bpf::FwAttachment &h) {
			return h.this_netns && h.dev == w.dev;
		});
		Action a;
		a.op = Op::FwAttach;
		a.dev = w.dev;
		a.mode = w.mode;
		a.text = fw_attach_text(w.dev, w.mode);
		if (have == c.fw_attach.end()) {
			a.why = "not attached";
			attach.push_back(a);
			continue;
		}
		attach_wanted[static_cast<size_t>(have - c.fw_attach.begin())] = true;
		if (w.mode && have->mode != w.mode) {
			Action det;
			det.op = Op::FwDetach;
			det.dev = w.dev;
			det.text = "fw detach dev " + w.dev;
			det.why = "attached in another mode";
			p.actions.push_back(det);
			a.why = "attached in another mode";
			attach.push_back(a);
		}
	}
	if (prune)
		for (size_t i = 0; i < c.fw_attach.size(); ++i) {
			const bpf::FwAttachment &h = c.fw_attach[i];
			if (attach_wanted[i] || !h.this_netns || h.dev.empty())
				continue;
			Action det;
			det.op = Op::FwDetach;
			det.dev = h.dev;
			det.text = "fw detach dev " + h.dev;
			det.why = "not in the file";
			p.actions.push_back(det);
		}

	// Rules: a rule with the same match and another action is replaced.
	std::vector<Action> adds;
	std::vector<bool> rule_wanted(c.fw.size(), false);
	for (const FwWant &w : d.fw) {
		bool found = false;
		for (size_t i = 0; i < c.fw.size(); ++i) {
			if (c.fw[i].spec == w.spec) {
				rule_wanted[i] = found = true;
			} else if (c.fw[i].spec.same_match(w.spec) && !rule_wanted[i]) {
				rule_wanted[i] = true; // replaced, not pruned
				p.actions.push_back(fw_del(c.fw[i].spec, "replaced by " + w.where));
			}
		}
		if (!found) {
			Action a;
			a.op = Op::FwAdd;
			a.fw = w.spec;
			a.text = "fw add " + bpf::fw_rule_text(w.spec);
			a.why = "missing";
			adds.push_back(a);
		}
	}
	if (prune)
		for (size_t i = 0; i < c.fw.size(); ++i)
			if (!rule_wanted[i])
				p.actions.push_back(fw_del(c.fw[i].spec, "not in the file"));
	p.actions.insert(p.actions.end(), attach.begin(), attach.end());
	p.actions.insert(p.actions.end(), adds.begin(), adds.end());
}

void plan_tproxy(const Desired &d, const Current &c, bool prune, Plan &p)
{
	std::vector<Action> adds;
	std::vector<bool> wanted(c.tproxy.size(), false);
	for (const TproxyWant &w : d.tproxy) {
		bool found = false;
		for (size_t i = 0; i < c.tproxy.size(); ++i) {
			if (same_rule(c.tproxy[i], w.rule)) {
				wanted[i] = found = true;
			} else if (steer_overlaps(w.rule, c.tproxy[i]) && !wanted[i]) {
				wanted[i] = true;
				p.actions.push_back(tproxy_del(c.tproxy[i], "replaced by " + w.where));
			}
		}
		if (!found) {
			Action a;
			a.op = Op::TproxyAdd;
			a.steer = w.spec;
			a.text = "tproxy add " + bpf::steer_rule_text(w.rule);
			a.why = "missing";
			adds.push_back(a);
		}
	}
	if (prune)
		for (size_t i = 0; i < c.tproxy.size(); ++i) {
			if (wanted[i])
				continue;
			if (c.tproxy[i].where.empty()) {
				p.notes.push_back("tproxy: rule `" + bpf::steer_rule_text(c.tproxy[i]) +
						  "` is of a cgroup that is gone; `sonic tproxy flush` removes it");
				continue;
			}
			p.actions.push_back(tproxy_del(c.tproxy[i], "not in the file"));
		}
	p.actions.insert(p.actions.end(), adds.begin(), adds.end());
}

} // namespace

// ---- public ------------------------------------------------------------

Desired parse(std::string_view text, const std::string &source)
{
	return build(config::parse_toml(text, source, "apply"), source);
}

Desired load(const std::string &path)
{
	return parse(sys::read_file(path, "apply"), path);
}

void resolve(Desired &d)
{
	auto cgroup_id = [](const std::string &path, const std::string &where) -> uint64_t {
		std::error_code ec;
		if (!path.empty() && !std::filesystem::is_directory(path, ec))
			throw usage_error("apply", where + ": no such cgroup: " + path);
		try {
			return sys::resolve_cgroup(path.empty() ? std::nullopt : std::optional<std::string>(path)).id;
		} catch (const Error &e) {
			throw usage_error("apply", where + ": " + e.reason() + (e.object().empty() ? "" : ": " + e.object()));
		}
	};
	auto interface = [](const std::string &dev, const std::string &where) {
		if (if_nametoindex(dev.c_str()) == 0)
			throw usage_error("apply", where + ": no such interface: " + dev);
	};
	if (d.accel)
		for (AccelCgroupWant &w : d.accel->cgroups)
			w.id = cgroup_id(w.path, w.where);
	for (TproxyWant &w : d.tproxy) {
		if (w.spec.kind == bpf::SteerKind::Dev)
			interface(w.spec.where, w.where);
		else
			cgroup_id(w.spec.where, w.where);
		w.rule = bpf::steer_rule_of(w.spec);
	}
	for (const FwAttachWant &w : d.fw_attach)
		interface(w.dev, w.where);
	for (const FwWant &w : d.fw)
		if (!w.spec.dev.empty())
			interface(w.spec.dev, w.where);
}

Current observe(const bpf::Bpffs &fs, const std::string &state_dir)
{
	Current c;
	c.accel = bpf::accel_status(fs).cgroups;
	const uint64_t netns = net::netns_cookie();
	for (const bpf::SteerRuleState &s : bpf::steer_list(fs))
		if (s.rule.kind == bpf::SteerKind::Cgroup || s.rule.netns == netns)
			c.tproxy.push_back(s.rule);
	if (tls::Ca::exists(state_dir))
		c.ca_key_type = tls::Ca::load(state_dir)->key_type();
	for (const bpf::FwAttachment &a : bpf::fw_attachments(fs))
		if (a.this_netns)
			c.fw_attach.push_back(a);
	c.fw = bpf::fw_rules(fs);
	return c;
}

Plan plan(const Desired &desired, const Current &current, bool prune)
{
	Plan p;
	plan_ca(desired, current, p);
	plan_accel(desired, current, prune, p);
	plan_fw(desired, current, prune, p);
	plan_tproxy(desired, current, prune, p);
	return p;
}

std::string_view op_name(Op op)
{
	switch (op) {
	case Op::CaInit:
		return "ca init";
	case Op::AccelEnable:
		return "accel enable";
	case Op::AccelDisable:
		return "accel disable";
	case Op::FwAttach:
		return "fw attach";
	case Op::FwDetach:
		return "fw detach";
	case Op::FwAdd:
		return "fw add";
	case Op::FwDel:
		return "fw del";
	case Op::TproxyAdd:
		return "tproxy add";
	case Op::TproxyDel:
		return "tproxy del";
	}
	return "?";
}

namespace {

void run(const bpf::Bpffs &fs, const std::string &state_dir, const Action &a)
{
	switch (a.op) {
	case Op::CaInit: {
		tls::CaOptions o;
		o.key_type = a.key_type;
		tls::ca_init(state_dir, o, false);
		return;
	}
	case Op::AccelEnable:
		bpf::accel_enable(fs, a.cgroup, a.ports, a.scope);
		return;
	case Op::AccelDisable:
		bpf::accel_disable(fs, a.cgroup, bpf::kDefaultReleaseTimeout);
		return;
	case Op::FwAttach:
		bpf::fw_attach(fs, a.dev, a.mode);
		return;
	case Op::FwDetach:
		bpf::fw_detach(fs, a.dev);
		return;
	case Op::FwAdd:
		bpf::fw_add(fs, a.fw);
		return;
	case Op::FwDel:
		bpf::fw_del(fs, a.fw);
		return;
	case Op::TproxyAdd:
		bpf::steer_add(fs, a.steer);
		return;
	case Op::TproxyDel:
		bpf::steer_del(fs, a.steer);
		return;
	}
}

} // namespace

Outcome execute(const bpf::Bpffs &fs, const std::string &state_dir, const Plan &plan)
{
	Outcome o;
	for (const Action &a : plan.actions) {
		if (o.failed) {
			o.left.push_back(&a);
			continue;
		}
		try {
			run(fs, state_dir, a);
			o.done.push_back(&a);
		} catch (const Error &e) {
			o.failed = &a;
			o.error = e.what();
			o.kind = e.kind();
		}
	}
	return o;
}

} // namespace sonic::apply
