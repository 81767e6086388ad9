// sonic apply without a kernel: the file's checks (errors name the line), and
// plan(), the difference between a file and what the kernel holds.
#include "apply/apply.hpp"
#include "net/addr.hpp"
#include "net/ports.hpp"
#include "out/error.hpp"

#include <catch2/catch.hpp>

using namespace sonic;
using namespace sonic::apply;

namespace {

std::string error_of(const std::string &text)
{
	try {
		parse(text, "a.toml");
	} catch (const Error &e) {
		CHECK(e.kind() == ErrorKind::Usage);
		return e.reason();
	}
	return "(no error)";
}

std::vector<std::string> texts(const Plan &p)
{
	std::vector<std::string> out;
	for (const Action &a : p.actions)
		out.push_back(a.text);
	return out;
}

bpf::FwRule fw_rule(const std::vector<std::string> &words)
{
	bpf::FwRule r;
	r.spec = bpf::parse_fw_rule(words);
	return r;
}

// A dev rule as resolve() would make it, on interface index 7.
bpf::SteerRule dev_rule(const std::string &ports, const std::string &to)
{
	bpf::SteerRule r;
	r.kind = bpf::SteerKind::Dev;
	r.netns = 1;
	r.scope = 7;
	r.where = "eth9";
	r.ports = net::parse_port_list(ports);
	r.to = net::parse_endpoint(to);
	r.family = r.to.addr.family;
	r.mark = bpf::kSteerDefaultMark;
	r.table = bpf::kSteerDefaultTable;
	return r;
}

} // namespace

TEST_CASE("apply reads every section", "[apply]")
{
	Desired d = parse(R"(
[ca]
key_type = "rsa-2048"
[accel]
scope = "proxy"
cgroups = ["/sys/fs/cgroup/a", "/sys/fs/cgroup/b"]
ports = [5432, "6379-6380"]
[[fw_attach]]
dev = "eth9"
mode = "generic"
[[fw]]
dev = "eth9"
action = "limit"
rate = "10/m"
burst = 3
proto = "tcp"
dport = 22
tcp_flags = "syn"
[[tproxy]]
cgroup = "/sys/fs/cgroup/a"
proto = "tcp"
dport = [80, 443]
to = "127.0.0.1:15001"
)",
			  "a.toml");
	REQUIRE(d.ca);
	CHECK(d.ca->key_type == tls::KeyType::Rsa2048);
	REQUIRE(d.accel);
	CHECK(d.accel->scope == bpf::AccelScope::Proxy);
	CHECK(d.accel->cgroups.size() == 2);
	CHECK(net::format_port_list(*d.accel->ports) == "5432,6379-6380");
	REQUIRE(d.fw_attach.size() == 1);
	CHECK(d.fw_attach[0].mode == bpf::XdpMode::Generic);
	REQUIRE(d.fw.size() == 1);
	CHECK(bpf::fw_rule_text(d.fw[0].spec) == "dev eth9 limit 10/m burst 3 proto tcp dport 22 tcp-flags syn");
	REQUIRE(d.tproxy.size() == 1);
	CHECK(d.tproxy[0].spec.kind == bpf::SteerKind::Cgroup);
	CHECK(net::format_port_list(d.tproxy[0].spec.ports) == "80,443");
	CHECK(d.tproxy[0].where == "a.toml:19:1");
}

TEST_CASE("apply errors name the file, the line and the problem", "[apply]")
{
	CHECK(error_of("[accel]\nports = [80, 70000]\n").rfind("a.toml:2:", 0) == 0);
	CHECK(error_of("[accel]\nports = [80, 70000]\n").find("70000") != std::string::npos);
	CHECK(error_of("[[fw]]\ndev = \"all\"\naction = \"drop\"\nsrc = \"10.0.0.0/33\"\n").rfind("a.toml:4:", 0) == 0);
	CHECK(error_of("[[fw]]\ndev = \"all\"\naction = \"drop\"\nsrc = \"10.0.0.0/33\"\n").find("10.0.0.0/33") !=
	      std::string::npos);
	CHECK(error_of("[[fw]]\ndev = \"all\"\naction = \"block\"\n").rfind("a.toml:3:", 0) == 0);
	CHECK(error_of("[[tproxy]]\ndev = \"eth0\"\nproto = \"tcp\"\ndport = \"http\"\nto = \"127.0.0.1:1\"\n")
		      .rfind("a.toml:4:", 0) == 0);
	CHECK(error_of("[[tproxy]]\ndev = \"eth0\"\nproto = \"tcp\"\ndport = 80\n").rfind("a.toml:1:", 0) == 0);
	CHECK(error_of("[ca]\nkey_type = \"dsa\"\n").rfind("a.toml:2:", 0) == 0);
	CHECK(error_of("[accel]\nscope = \"some\"\n").rfind("a.toml:2:", 0) == 0);
	CHECK(error_of("bogus = 1\n").find("unknown key 'bogus'") != std::string::npos);
	CHECK(error_of("[accel]\ncgroup = \"/x\"\n").find("unknown key 'cgroup' in [accel]") != std::string::npos);
	CHECK(error_of("[[fw_attach]]\ndev = \"eth0\"\n[[fw_attach]]\ndev = \"eth0\"\n").rfind("a.toml:3:", 0) == 0);
	CHECK(error_of("[[fw]]\ndev = \"all\"\naction = \"drop\"\n[[fw]]\ndev = \"all\"\naction = \"pass\"\n")
		      .find("the same match") != std::string::npos);
	CHECK(error_of("x = [\n").rfind("a.toml:", 0) == 0);
}

TEST_CASE("apply plans nothing when the kernel holds what the file says", "[apply]")
{
	Desired d = parse("[[fw]]\ndev = \"all\"\naction = \"drop\"\nsrc = \"192.0.2.0/24\"\n"
			  "[[tproxy]]\ndev = \"eth9\"\nproto = \"tcp\"\ndport = 80\nto = \"127.0.0.1:15001\"\n"
			  "[ca]\n",
			  "a.toml");
	d.tproxy[0].rule = dev_rule("80", "127.0.0.1:15001");
	Current c;
	c.fw.push_back(fw_rule({"dev", "all", "drop", "src", "192.0.2.0/24"}));
	c.tproxy.push_back(dev_rule("80", "127.0.0.1:15001"));
	c.ca_key_type = "ecdsa-p256";
	CHECK(plan(d, c, false).actions.empty());
	CHECK(plan(d, c, true).actions.empty());
}

TEST_CASE("apply adds what is missing and replaces what differs", "[apply]")
{
	Desired d = parse("[[fw]]\ndev = \"all\"\naction = \"drop\"\nsrc = \"192.0.2.0/24\"\n"
			  "[[tproxy]]\ndev = \"eth9\"\nproto = \"tcp\"\ndport = \"80,443\"\nto = \"127.0.0.1:15001\"\n"
			  "[ca]\n",
			  "a.toml");
	d.tproxy[0].rule = dev_rule("80,443", "127.0.0.1:15001");
	Current c;
	c.fw.push_back(fw_rule({"dev", "all", "pass", "src", "192.0.2.0/24"}));    // same match, other action
	c.fw.push_back(fw_rule({"dev", "all", "drop", "src", "198.51.100.0/24"})); // not in the file
	c.tproxy.push_back(dev_rule("80", "127.0.0.1:15001"));                     // overlaps
	Plan p = plan(d, c, false);
	CHECK(texts(p) == std::vector<std::string>{
				  "ca init --key-type ecdsa-p256",
				  "fw del dev all pass src 192.0.2.0/24",
				  "fw add dev all drop src 192.0.2.0/24",
				  "tproxy del " + bpf::steer_rule_text(dev_rule("80", "127.0.0.1:15001")),
				  "tproxy add " + bpf::steer_rule_text(dev_rule("80,443", "127.0.0.1:15001")),
			  });
	// --prune also removes the rule the file does not name, before additions.
	Plan pruned = plan(d, c, true);
	REQUIRE(pruned.actions.size() == 6);
	CHECK(pruned.actions[2].text == "fw del dev all drop src 198.51.100.0/24");
	CHECK(pruned.actions[2].why == "not in the file");
	CHECK(pruned.actions[3].op == Op::FwAdd);
}

TEST_CASE("apply leaves sections the file lacks unless --prune", "[apply]")
{
	Desired d = parse("", "a.toml");
	Current c;
	bpf::AccelCgroup cg;
	cg.path = "/sys/fs/cgroup/app";
	cg.cgroup_id = 42;
	c.accel.push_back(cg);
	bpf::FwAttachment at;
	at.dev = "eth9";
	at.mode = bpf::XdpMode::Generic;
	c.fw_attach.push_back(at);
	c.fw.push_back(fw_rule({"dev", "all", "drop", "src", "192.0.2.0/24"}));
	c.tproxy.push_back(dev_rule("80", "127.0.0.1:15001"));
	c.ca_key_type = "rsa-2048";
	CHECK(plan(d, c, false).actions.empty());
	Plan p = plan(d, c, true);
	CHECK(texts(p) == std::vector<std::string>{
				  "accel disable cgroup /sys/fs/cgroup/app",
				  "fw detach dev eth9",
				  "fw del dev all drop src 192.0.2.0/24",
				  "tproxy del " + bpf::steer_rule_text(dev_rule("80", "127.0.0.1:15001")),
			  });
}

TEST_CASE("apply compares accel by cgroup, ports and scope", "[apply]")
{
	Desired d = parse("[accel]\ncgroups = [\"/sys/fs/cgroup/app\"]\nports = [5432]\n", "a.toml");
	d.accel->cgroups[0].id = 42;
	Current c;
	bpf::AccelCgroup cg;
	cg.path = "/sys/fs/cgroup/app";
	cg.cgroup_id = 42;
	cg.ports = net::parse_port_list("5432");
	c.accel.push_back(cg);
	CHECK(plan(d, c, true).actions.empty());
	c.accel[0].ports = std::nullopt; // every port
	Plan p = plan(d, c, false);
	REQUIRE(p.actions.size() == 1);
	CHECK(p.actions[0].text == "accel enable cgroup /sys/fs/cgroup/app ports 5432 scope all");
	CHECK(p.actions[0].why == "ports differ");
}

TEST_CASE("apply never replaces a CA of another key type", "[apply]")
{
	Desired d = parse("[ca]\nkey_type = \"rsa-4096\"\n", "a.toml");
	Current c;
	c.ca_key_type = "ecdsa-p256";
	Plan p = plan(d, c, true);
	CHECK(p.actions.empty());
	REQUIRE(p.notes.size() == 1);
	CHECK(p.notes[0].rfind("a.toml:1:1: the CA's key is ecdsa-p256", 0) == 0);
}

TEST_CASE("apply replaces an fw attachment of another mode", "[apply]")
{
	Desired d = parse("[[fw_attach]]\ndev = \"eth9\"\nmode = \"native\"\n", "a.toml");
	Current c;
	bpf::FwAttachment at;
	at.dev = "eth9";
	at.mode = bpf::XdpMode::Generic;
	c.fw_attach.push_back(at);
	CHECK(texts(plan(d, c, false)) ==
	      std::vector<std::string>{"fw detach dev eth9", "fw attach dev eth9 mode native"});
	// Without a mode in the file, whatever mode it runs in is fine.
	Desired any = parse("[[fw_attach]]\ndev = \"eth9\"\n", "a.toml");
	CHECK(plan(any, c, false).actions.empty());
}
