// Where sonic keeps its CA and its leaf cache under the state directory.
#pragma once

#include <string>

namespace sonic::tls {

struct StatePaths {
	std::string ca_dir;    // <state>/ca, 0700
	std::string ca_file;   // <state>/ca/ca.pem: the CA key and certificate, 0600
	std::string certs_dir; // <state>/certs, 0700: one <name>.pem per leaf, 0600

	explicit StatePaths(const std::string &state_dir)
		: ca_dir(state_dir + "/ca"), ca_file(ca_dir + "/ca.pem"), certs_dir(state_dir + "/certs")
	{
	}
};

} // namespace sonic::tls
