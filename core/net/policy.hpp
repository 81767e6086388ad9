// Policy routing for steered packets, made through netlink (libnl-route):
// a rule "fwmark MARK lookup TABLE" and, in TABLE, a local default route, so
// packets the tc program marked are delivered to this host instead of being
// forwarded. Both carry sonic's routing protocol number, which is how sonic
// tells its own rules and routes from everyone else's.
#pragma once

#include <cstdint>
#include <vector>

namespace sonic::net {

// rtm_protocol / FRA_PROTOCOL of everything sonic makes ("S").
inline constexpr uint8_t kSonicRouteProtocol = 83;
// Preference of sonic's rules: after the local table (0), before main.
inline constexpr uint32_t kSonicRulePriority = 5300;

struct PolicyRoute {
	int family = 0; // AF_INET or AF_INET6
	uint32_t mark = 0;
	uint32_t table = 0;
	bool operator==(const PolicyRoute &) const = default;
};

struct PolicyState {
	bool rule = false;  // the fwmark rule exists
	bool route = false; // the local default route exists in the table
};

// Makes the rule and the route where missing; returns whether anything was
// made. Netlink failures are kernel errors (exit 2).
bool ensure_policy_route(const PolicyRoute &p);
// Removes sonic's rule and route for P; returns whether anything was there.
bool remove_policy_route(const PolicyRoute &p);
PolicyState policy_route_state(const PolicyRoute &p);

// Every rule and local default route sonic made in this network namespace,
// as (family, mark, table); a route alone has mark 0.
std::vector<PolicyRoute> sonic_policy_routes();

} // namespace sonic::net
