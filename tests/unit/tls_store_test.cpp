// The CA, minted leaves and the certificate store, on a temporary state
// directory (no root needed).
#include "out/error.hpp"
#include "sys/fs.hpp"
#include "tls/ca.hpp"
#include "tls/leaf.hpp"
#include "tls/leaf_dir.hpp"
#include "tls/state.hpp"
#include "tls/store.hpp"
#include "tls/trust.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <set>
#include <sys/stat.h>
#include <thread>

using namespace sonic;
using namespace sonic::tls;

namespace {

struct TempDir {
	std::string path;
	TempDir()
	{
		char tmpl[] = "/tmp/sonic-unit-tls-XXXXXX";
		path = mkdtemp(tmpl);
	}
	~TempDir() { std::filesystem::remove_all(path); }
};

mode_t mode_of(const std::string &path)
{
	struct stat st {};
	REQUIRE(stat(path.c_str(), &st) == 0);
	return st.st_mode & 07777;
}

std::shared_ptr<const Ca> test_ca()
{
	static std::shared_ptr<const Ca> ca = Ca::generate({});
	return ca;
}

bool verifies(const Leaf &leaf, const Ca &ca, const std::string &host)
{
	gnutls_x509_crt_t cas[] = {ca.crt()};
	unsigned status = 0;
	gnutls_typed_vdata_st data{GNUTLS_DT_DNS_HOSTNAME, reinterpret_cast<unsigned char *>(const_cast<char *>(host.c_str())), 0};
	gnutls_x509_trust_list_t list = nullptr;
	gnutls_x509_trust_list_init(&list, 0);
	gnutls_x509_crt_t copy = nullptr;
	gnutls_x509_crt_init(&copy);
	std::string der = ca.cert_der();
	gnutls_datum_t d{reinterpret_cast<unsigned char *>(der.data()), static_cast<unsigned>(der.size())};
	gnutls_x509_crt_import(copy, &d, GNUTLS_X509_FMT_DER);
	gnutls_x509_trust_list_add_cas(list, &copy, 1, 0);
	gnutls_x509_crt_t chain[] = {leaf.crt()};
	int rc = gnutls_x509_trust_list_verify_crt2(list, chain, 1, &data, 1, 0, &status, nullptr);
	gnutls_x509_trust_list_deinit(list, 1);
	(void)cas;
	return rc == 0 && status == 0;
}

} // namespace

TEST_CASE("a CA is made once, kept private, and replaced only with force", "[tls][ca]")
{
	TempDir state;
	StatePaths paths(state.path);
	CHECK_THROWS_WITH(Ca::load(state.path), Catch::Contains("run `sonic ca init`"));
	try {
		Ca::load(state.path);
	} catch (const Error &e) {
		CHECK(e.kind() == ErrorKind::Environment);
	}

	CaInitResult first = ca_init(state.path, {}, false);
	CHECK(first.changed);
	CHECK(first.ca->key_type() == "ecdsa-p256");
	CHECK(first.ca->subject() == "CN=sonic CA,O=sonic");
	CHECK(mode_of(paths.ca_dir) == 0700);
	CHECK(mode_of(paths.ca_file) == 0600);

	CaInitResult again = ca_init(state.path, {KeyType::Rsa2048, "other", 10}, false);
	CHECK_FALSE(again.changed);
	CHECK(again.ca->fingerprint() == first.ca->fingerprint());

	StoreOptions options;
	options.dir = paths.certs_dir;
	CertStore(Ca::load(state.path), options).get("example.com");
	CHECK(std::filesystem::exists(paths.certs_dir + "/example.com.pem"));

	CaInitResult forced = ca_init(state.path, {KeyType::Rsa2048, "Test Root", 10}, true);
	CHECK(forced.changed);
	CHECK(forced.leaves_removed == 1);
	CHECK(forced.ca->fingerprint() != first.ca->fingerprint());
	CHECK(forced.ca->key_type() == "rsa-2048");
	CHECK(Ca::load(state.path)->subject() == "CN=Test Root,O=sonic");
	CHECK_FALSE(std::filesystem::exists(paths.certs_dir + "/example.com.pem"));
}

TEST_CASE("a corrupt CA file is an environment error with a way out", "[tls][ca]")
{
	TempDir state;
	ca_init(state.path, {}, false);
	sys::write_file_atomic(StatePaths(state.path).ca_file, "garbage", 0600, false);
	try {
		Ca::load(state.path);
		FAIL("loaded a corrupt CA");
	} catch (const Error &e) {
		CHECK(e.kind() == ErrorKind::Environment);
		CHECK_THAT(e.what(), Catch::Contains("corrupt"));
		CHECK_THAT(e.hint(), Catch::Contains("--force"));
	}
}

TEST_CASE("leaves carry what browsers check", "[tls][leaf]")
{
	auto ca = test_ca();
	auto leaf = Leaf::mint(ca, parse_name("www.example.com"), 30, nullptr, true, std::time(nullptr));
	gnutls_x509_crt_t crt = leaf->crt();
	CHECK(leaf->names() == std::vector<std::string>{"www.example.com"});
	CHECK(subject_dn(crt) == "CN=www.example.com");
	CHECK(key_type(crt) == "ecdsa-p256");
	CHECK(leaf->not_after() - leaf->not_before() == 31 * 86400);
	CHECK(leaf->not_before() <= std::time(nullptr) - 86400 + 5);
	CHECK(authority_key_id(crt) == ca->key_id());
	CHECK(subject_key_id(crt) == key_id(crt));
	CHECK(serial_hex(crt).size() == 32);
	unsigned critical = 0;
	char oid[128];
	size_t size = sizeof(oid);
	REQUIRE(gnutls_x509_crt_get_key_purpose_oid(crt, 0, oid, &size, &critical) == 0);
	CHECK(std::string(oid) == GNUTLS_KP_TLS_WWW_SERVER);
	CHECK(gnutls_x509_crt_get_ca_status(crt, nullptr) == 0);
	CHECK(verifies(*leaf, *ca, "www.example.com"));
	CHECK_FALSE(verifies(*leaf, *ca, "example.com"));
	CHECK(leaf->chain_length() == 2);
	CHECK(leaf->privkey() != nullptr);

	// Two leaves never share a serial; a name over 64 bytes gets no CN.
	auto other = Leaf::mint(ca, parse_name("www.example.com"), 30, nullptr, true, std::time(nullptr));
	CHECK(serial_hex(other->crt()) != serial_hex(crt));
	std::string long_name = std::string(60, 'a') + ".example.com";
	auto long_leaf = Leaf::mint(ca, parse_name(long_name), 30, nullptr, true, std::time(nullptr));
	CHECK(subject_dn(long_leaf->crt()) == "O=sonic");
	CHECK(verifies(*long_leaf, *ca, long_name));

	auto wildcard = Leaf::mint(ca, parse_name("*.example.com"), 30, nullptr, true, std::time(nullptr));
	CHECK(verifies(*wildcard, *ca, "a.example.com"));
	CHECK_FALSE(verifies(*wildcard, *ca, "a.b.example.com"));
	CHECK_FALSE(verifies(*wildcard, *ca, "example.com"));

	auto v6 = Leaf::mint(ca, parse_name("2001:db8::1"), 30, nullptr, true, std::time(nullptr));
	CHECK(v6->names() == std::vector<std::string>{"2001:db8::1"});

	CHECK_THROWS(Leaf::mint(ca, parse_name("example.com"), 398, nullptr, true, std::time(nullptr)));
	CHECK_NOTHROW(Leaf::mint(ca, parse_name("example.com"), 397, nullptr, true, std::time(nullptr)));
}

TEST_CASE("sixteen threads over 200 names mint each name once", "[tls][store]")
{
	TempDir state;
	StoreOptions options;
	options.dir = state.path + "/certs";
	CertStore store(test_ca(), options);
	std::vector<std::string> names;
	for (int i = 0; i < 200; ++i)
		names.push_back("host" + std::to_string(i) + ".example.com");
	std::atomic<int> wrong{0};
	std::vector<std::thread> threads;
	for (int t = 0; t < 16; ++t)
		threads.emplace_back([&, t] {
			for (int i = 0; i < 1000; ++i) {
				const std::string &name = names[(i * 7 + t * 13) % names.size()];
				if (store.get(name)->name() != name)
					++wrong;
			}
		});
	for (auto &t : threads)
		t.join();
	store.flush();
	StoreStats s = store.stats();
	CHECK(wrong == 0);
	CHECK(s.mints == 200);
	CHECK(s.disk_loads == 0);
	CHECK(s.size == 200);
	CHECK(s.hits + s.misses + s.waits == 16000);
	size_t files = 0;
	for (auto &e : std::filesystem::directory_iterator(options.dir)) {
		CHECK(mode_of(e.path()) == 0600);
		++files;
	}
	CHECK(files == 200);
	CHECK(mode_of(options.dir) == 0700);
}

TEST_CASE("a cached leaf is the same object, under any spelling of its name", "[tls][store]")
{
	CertStore store(test_ca(), {});
	auto a = store.get("Example.COM.");
	CHECK(store.fetch("example.com").source == LeafSource::Memory);
	CHECK(store.get("example.com") == a);
	CHECK(store.get("[::1]") == store.get("0:0::1"));
	CHECK(store.get("b\xc3\xbc" "cher.example")->name() == "xn--bcher-kva.example");
	CHECK_THROWS_AS(store.get("a..b"), Error);
	CHECK(store.stats().mints == 3);
}

TEST_CASE("the disk cache survives a restart and corrupt files are minted anew", "[tls][store]")
{
	TempDir state;
	StoreOptions options;
	options.dir = state.path + "/certs";
	std::string fingerprint;
	{
		CertStore store(test_ca(), options);
		CHECK(store.fetch("example.com").source == LeafSource::Minted);
		fingerprint = fingerprint_sha256(store.get("example.com")->crt());
	}
	{
		CertStore store(test_ca(), options);
		Fetched f = store.fetch("example.com");
		CHECK(f.source == LeafSource::Disk);
		CHECK(fingerprint_sha256(f.leaf->crt()) == fingerprint);
	}
	sys::write_file_atomic(options.dir + "/example.com.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n", 0600, false);
	{
		CertStore store(test_ca(), options);
		Fetched f = store.fetch("example.com");
		CHECK(f.source == LeafSource::Minted);
		CHECK(fingerprint_sha256(f.leaf->crt()) != fingerprint);
	}
	// A file holding another name's leaf is not served for this one.
	std::filesystem::copy_file(options.dir + "/example.com.pem", options.dir + "/other.example.pem");
	CertStore store(test_ca(), options);
	CHECK(store.get("other.example")->name() == "other.example");
}

TEST_CASE("leaves of another CA are replaced", "[tls][store]")
{
	TempDir state;
	StoreOptions options;
	options.dir = state.path + "/certs";
	CertStore(test_ca(), options).get("example.com");
	auto other_ca = Ca::generate({});
	CertStore store(other_ca, options);
	Fetched f = store.fetch("example.com");
	CHECK(f.source == LeafSource::Minted);
	CHECK(authority_key_id(f.leaf->crt()) == other_ca->key_id());
	store.flush();
	auto files = LeafDir(options.dir).list(*test_ca(), std::time(nullptr), 0);
	REQUIRE(files.size() == 1);
	CHECK(files[0].state == LeafState::OtherCa);
}

TEST_CASE("leaves are renewed inside their window and never served expired", "[tls][store]")
{
	std::atomic<int64_t> now{std::time(nullptr)};
	StoreOptions options;
	options.clock = [&now] { return now.load(); };
	CertStore store(test_ca(), options);
	auto first = store.get("example.com");
	now += 19 * 86400;
	CHECK(store.get("example.com") == first);
	now += 2 * 86400; // 21 of 31 days gone: inside the last third
	auto renewed = store.get("example.com");
	CHECK(renewed != first);
	CHECK(renewed->not_after() > first->not_after());
	CHECK(store.stats().mints == 2);
}

TEST_CASE("the LRU keeps the capacity and the most recently used", "[tls][store]")
{
	StoreOptions options;
	options.capacity = 4;
	options.shards = 1;
	CertStore store(test_ca(), options);
	auto a = store.get("a.example");
	store.get("b.example");
	store.get("c.example");
	store.get("d.example");
	CHECK(store.get("a.example") == a); // a is now the most recent
	store.get("e.example");             // evicts b
	StoreStats s = store.stats();
	CHECK(s.size == 4);
	CHECK(s.evictions == 1);
	CHECK(store.fetch("a.example").source == LeafSource::Memory);
	CHECK(store.fetch("b.example").source == LeafSource::Minted);
}

TEST_CASE("SNI lookups fall back to a cached wildcard one level up", "[tls][store]")
{
	TempDir state;
	StoreOptions options;
	options.dir = state.path + "/certs";
	{
		CertStore store(test_ca(), options);
		store.get("*.example.com");
		store.get("exact.example.com");
	}
	CertStore store(test_ca(), options);
	auto wildcard = store.get_for_sni("a.example.com");
	CHECK(wildcard->name() == "*.example.com");
	CHECK(store.get_for_sni("B.example.com") == wildcard);
	CHECK(store.get_for_sni("exact.example.com")->name() == "exact.example.com");
	CHECK(store.get_for_sni("a.b.example.com")->name() == "a.b.example.com");
	CHECK(store.get_for_sni("example.com")->name() == "example.com");
	CHECK(store.stats().mints == 2);
	// An exact lookup wants the name's own leaf; once minted, SNI gets it too.
	CHECK(store.get("a.example.com")->name() == "a.example.com");
	CHECK(store.get_for_sni("a.example.com")->name() == "a.example.com");
	CHECK(store.stats().mints == 3);
}

TEST_CASE("under the shared key policy every leaf has the one key", "[tls][store]")
{
	TempDir state;
	StoreOptions options;
	options.dir = state.path + "/certs";
	options.key_policy = LeafKeyPolicy::Shared;
	std::vector<uint8_t> key;
	{
		CertStore store(test_ca(), options);
		auto a = store.get("a.example");
		auto b = store.get("b.example");
		CHECK(key_id(a->crt()) == key_id(b->crt()));
		CHECK_FALSE(a->own_key());
		key = key_id(a->crt());
		CHECK(mode_of(options.dir + "/.leaf-key.pem") == 0600);
	}
	// Read back under either policy.
	options.key_policy = LeafKeyPolicy::PerLeaf;
	CertStore store(test_ca(), options);
	Fetched f = store.fetch("a.example");
	CHECK(f.source == LeafSource::Disk);
	CHECK(key_id(f.leaf->crt()) == key);
	CHECK(key_id(store.get("c.example")->crt()) != key);
}

TEST_CASE("a failed mint reaches every waiter and is not cached", "[tls][store]")
{
	StoreOptions options;
	options.days = 0; // every mint refuses it
	CertStore store(test_ca(), options);
	std::atomic<int> failures{0};
	std::vector<std::thread> threads;
	for (int t = 0; t < 8; ++t)
		threads.emplace_back([&] {
			try {
				store.get("example.com");
			} catch (const Error &) {
				++failures;
			}
		});
	for (auto &t : threads)
		t.join();
	CHECK(failures == 8);
	CHECK_THROWS_AS(store.get("example.com"), Error);
	CHECK(store.stats().size == 0);
}

TEST_CASE("a leaf that cannot be written is served, and flush reports why", "[tls][store]")
{
	TempDir state;
	StoreOptions options;
	options.dir = state.path + "/certs";
	options.warn_write_errors = false;
	// A file where the directory should be: every write fails.
	sys::write_file_atomic(options.dir, "", 0600, false);
	CertStore store(test_ca(), options);
	auto leaf = store.get("example.com");
	CHECK(store.get("example.com") == leaf);
	CHECK_THROWS_AS(store.flush(), Error);
	CHECK(store.stats().write_errors == 1);
	CHECK_NOTHROW(store.flush());
}

TEST_CASE("the CA exports as PEM, DER and PKCS#12", "[tls][ca]")
{
	auto ca = test_ca();
	CHECK(ca_export(*ca, ExportFormat::Pem).rfind("-----BEGIN CERTIFICATE-----", 0) == 0);
	CHECK(ca_export(*ca, ExportFormat::Der) == ca->cert_der());
	std::string p12 = ca_export(*ca, ExportFormat::Pkcs12);
	CHECK(export_matches(p12, *ca, ExportFormat::Pkcs12));
	CHECK_FALSE(export_matches(p12, *Ca::generate({}), ExportFormat::Pkcs12));
	CHECK_FALSE(export_matches("junk", *ca, ExportFormat::Pkcs12));
	CHECK(p12.find("PRIVATE") == std::string::npos);
}

TEST_CASE("the trust store layout is found by its directories and tool", "[tls][trust]")
{
	TempDir root;
	CHECK_FALSE(detect_trust_store(root.path));
	auto tool = [&](const std::string &path) {
		std::filesystem::create_directories(std::filesystem::path(root.path + path).parent_path());
		sys::write_file_atomic(root.path + path, "#!/bin/sh\n", 0755, false);
	};
	tool("/usr/sbin/update-ca-trust");
	std::filesystem::create_directories(root.path + "/etc/pki/ca-trust/source/anchors");
	auto rhel = detect_trust_store(root.path);
	REQUIRE(rhel);
	CHECK(rhel->layout == "rhel");
	CHECK(rhel->file == root.path + "/etc/pki/ca-trust/source/anchors/sonic-ca.crt");
	CHECK(rhel->update == std::vector<std::string>{root.path + "/usr/sbin/update-ca-trust", "extract"});

	tool("/usr/sbin/update-ca-certificates");
	std::filesystem::create_directories(root.path + "/usr/local/share/ca-certificates");
	auto debian = detect_trust_store(root.path);
	REQUIRE(debian);
	CHECK(debian->layout == "debian");
	CHECK(debian->file == root.path + "/usr/local/share/ca-certificates/sonic-ca.crt");
	CHECK(debian->rebuild.back() == "--fresh");
}

TEST_CASE("a leaf takes an origin's names, and is minted again only when it lacks some", "[tls][store]")
{
	CertStore store(test_ca(), {});
	auto plain = store.get_for_sni("shop.example");
	CHECK(plain->names() == std::vector<std::string>{"shop.example"});
	const std::vector<std::string> origin = {"shop.example", "www.shop.example", "*.cdn.example", "192.0.2.7",
						 "bad..name"};
	Fetched f = store.fetch_covering("shop.example", origin);
	CHECK(f.source == LeafSource::Minted);
	CHECK(f.leaf->name() == "shop.example");
	CHECK(f.leaf->names() ==
	      std::vector<std::string>{"shop.example", "www.shop.example", "*.cdn.example", "192.0.2.7"});
	CHECK(verifies(*f.leaf, *test_ca(), "www.shop.example"));
	// Now cached with those names: served from memory, for the names or fewer.
	CHECK(store.cached_for_sni("shop.example") == f.leaf);
	CHECK(CertStore::covers(*f.leaf, origin));
	CHECK(store.fetch_covering("shop.example", {"www.shop.example"}).leaf == f.leaf);
	CHECK_FALSE(CertStore::covers(*plain, origin));
	// A name the origin adds later: minted again.
	auto grown = store.fetch_covering("shop.example", {"new.shop.example"});
	CHECK(grown.source == LeafSource::Minted);
	CHECK(grown.leaf != f.leaf);
}
