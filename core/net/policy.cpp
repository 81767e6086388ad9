#include "net/policy.hpp"

#include "out/error.hpp"

#include <cerrno>
#include <cstring>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <memory>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>
#include <string>
#include <sys/socket.h>

namespace sonic::net {

namespace {

struct SockDeleter {
	void operator()(nl_sock *s) const { nl_socket_free(s); }
};
struct RuleDeleter {
	void operator()(rtnl_rule *r) const { rtnl_rule_put(r); }
};
struct RouteDeleter {
	void operator()(rtnl_route *r) const { rtnl_route_put(r); }
};
struct CacheDeleter {
	void operator()(nl_cache *c) const { nl_cache_free(c); }
};
struct AddrDeleter {
	void operator()(nl_addr *a) const { nl_addr_put(a); }
};

std::string what(const PolicyRoute &p)
{
	return std::string(p.family == AF_INET ? "ipv4" : "ipv6") + " fwmark " + std::to_string(p.mark) + " table " +
	       std::to_string(p.table);
}

Error netlink_error(const std::string &op, int err, const PolicyRoute &p)
{
	Error e = kernel_error(op, nl_geterror(err), what(p));
	if (err == -NLE_PERM)
		e = env_error(op, "not permitted (needs CAP_NET_ADMIN)", what(p));
	return e;
}

std::unique_ptr<nl_sock, SockDeleter> connect_route()
{
	std::unique_ptr<nl_sock, SockDeleter> sk(nl_socket_alloc());
	if (!sk)
		throw kernel_error("open netlink socket", "out of memory");
	if (int err = nl_connect(sk.get(), NETLINK_ROUTE))
		throw kernel_error("open netlink socket", nl_geterror(err));
	return sk;
}

std::unique_ptr<rtnl_rule, RuleDeleter> make_rule(const PolicyRoute &p)
{
	std::unique_ptr<rtnl_rule, RuleDeleter> r(rtnl_rule_alloc());
	rtnl_rule_set_family(r.get(), p.family);
	rtnl_rule_set_prio(r.get(), kSonicRulePriority);
	rtnl_rule_set_mark(r.get(), p.mark);
	rtnl_rule_set_mask(r.get(), 0xffffffffu);
	rtnl_rule_set_table(r.get(), p.table);
	rtnl_rule_set_action(r.get(), FR_ACT_TO_TBL);
	rtnl_rule_set_protocol(r.get(), kSonicRouteProtocol);
	return r;
}

std::unique_ptr<rtnl_route, RouteDeleter> make_route(const PolicyRoute &p)
{
	std::unique_ptr<rtnl_route, RouteDeleter> r(rtnl_route_alloc());
	rtnl_route_set_family(r.get(), static_cast<uint8_t>(p.family));
	rtnl_route_set_table(r.get(), p.table);
	rtnl_route_set_type(r.get(), RTN_LOCAL);
	rtnl_route_set_scope(r.get(), RT_SCOPE_HOST);
	rtnl_route_set_protocol(r.get(), kSonicRouteProtocol);
	uint8_t zero[16] = {};
	std::unique_ptr<nl_addr, AddrDeleter> dst(nl_addr_build(p.family, zero, p.family == AF_INET ? 4 : 16));
	nl_addr_set_prefixlen(dst.get(), 0);
	rtnl_route_set_dst(r.get(), dst.get());
	rtnl_nexthop *nh = rtnl_route_nh_alloc();
	rtnl_route_nh_set_ifindex(nh, static_cast<int>(if_nametoindex("lo")));
	rtnl_route_add_nexthop(r.get(), nh);
	return r;
}

struct Found {
	std::vector<PolicyRoute> rules;
	std::vector<PolicyRoute> routes; // mark 0
};

Found dump(nl_sock *sk)
{
	Found f;
	nl_cache *raw = nullptr;
	if (int err = rtnl_rule_alloc_cache(sk, AF_UNSPEC, &raw))
		throw kernel_error("list routing rules", nl_geterror(err));
	std::unique_ptr<nl_cache, CacheDeleter> rules(raw);
	for (nl_object *o = nl_cache_get_first(rules.get()); o; o = nl_cache_get_next(o)) {
		auto *r = reinterpret_cast<rtnl_rule *>(o);
		uint8_t proto = 0;
		if (rtnl_rule_get_protocol(r, &proto) != 0 || proto != kSonicRouteProtocol)
			continue;
		f.rules.push_back({rtnl_rule_get_family(r), rtnl_rule_get_mark(r), rtnl_rule_get_table(r)});
	}
	raw = nullptr;
	if (int err = rtnl_route_alloc_cache(sk, AF_UNSPEC, 0, &raw))
		throw kernel_error("list routes", nl_geterror(err));
	std::unique_ptr<nl_cache, CacheDeleter> routes(raw);
	for (nl_object *o = nl_cache_get_first(routes.get()); o; o = nl_cache_get_next(o)) {
		auto *r = reinterpret_cast<rtnl_route *>(o);
		if (rtnl_route_get_protocol(r) != kSonicRouteProtocol || rtnl_route_get_type(r) != RTN_LOCAL)
			continue;
		nl_addr *dst = rtnl_route_get_dst(r);
		if (dst && nl_addr_get_prefixlen(dst) != 0)
			continue;
		f.routes.push_back({rtnl_route_get_family(r), 0, rtnl_route_get_table(r)});
	}
	return f;
}

bool has_rule(const Found &f, const PolicyRoute &p)
{
	for (const PolicyRoute &r : f.rules)
		if (r == p)
			return true;
	return false;
}

bool has_route(const Found &f, const PolicyRoute &p)
{
	for (const PolicyRoute &r : f.routes)
		if (r.family == p.family && r.table == p.table)
			return true;
	return false;
}

} // namespace

bool ensure_policy_route(const PolicyRoute &p)
{
	auto sk = connect_route();
	Found f = dump(sk.get());
	bool changed = false;
	if (!has_route(f, p)) {
		auto route = make_route(p);
		int err = rtnl_route_add(sk.get(), route.get(), NLM_F_EXCL);
		if (err && err != -NLE_EXIST)
			throw netlink_error("add local route", err, p);
		changed = true;
	}
	if (!has_rule(f, p)) {
		auto rule = make_rule(p);
		int err = rtnl_rule_add(sk.get(), rule.get(), NLM_F_EXCL);
		if (err && err != -NLE_EXIST)
			throw netlink_error("add routing rule", err, p);
		changed = true;
	}
	return changed;
}

bool remove_policy_route(const PolicyRoute &p)
{
	auto sk = connect_route();
	Found f = dump(sk.get());
	bool changed = false;
	// The rule first: without it nothing reaches the table.
	if (p.mark && has_rule(f, p)) {
		auto rule = make_rule(p);
		int err = rtnl_rule_delete(sk.get(), rule.get(), 0);
		if (err && err != -NLE_OBJ_NOTFOUND)
			throw netlink_error("delete routing rule", err, p);
		changed = true;
	}
	bool table_used = false;
	for (const PolicyRoute &r : f.rules)
		table_used = table_used || (r.family == p.family && r.table == p.table && !(r == p));
	if (!table_used && has_route(f, p)) {
		auto route = make_route(p);
		int err = rtnl_route_delete(sk.get(), route.get(), 0);
		if (err && err != -NLE_OBJ_NOTFOUND)
			throw netlink_error("delete local route", err, p);
		changed = true;
	}
	return changed;
}

PolicyState policy_route_state(const PolicyRoute &p)
{
	auto sk = connect_route();
	Found f = dump(sk.get());
	return {has_rule(f, p), has_route(f, p)};
}

std::vector<PolicyRoute> sonic_policy_routes()
{
	auto sk = connect_route();
	Found f = dump(sk.get());
	std::vector<PolicyRoute> out = f.rules;
	for (const PolicyRoute &r : f.routes) {
		bool covered = false;
		for (const PolicyRoute &rule : f.rules)
			covered = covered || (rule.family == r.family && rule.table == r.table);
		if (!covered)
			out.push_back(r);
	}
	return out;
}

} // namespace sonic::net
