// The service manager's readiness protocol (sd_notify(3)), spoken directly:
// one datagram of "KEY=VALUE" lines to the Unix socket $NOTIFY_SOCKET names
// (a path, or an abstract name written "@name"). No libsystemd.
#pragma once

#include <string>
#include <string_view>

namespace sonic::sys {

// Sends STATE ("READY=1\nSTATUS=..."). Without $NOTIFY_SOCKET it does
// nothing and returns false; a socket that cannot be reached is logged once
// as a warning and also returns false (sonic runs on without it).
bool notify(std::string_view state);

// "RELOADING=1\nMONOTONIC_USEC=N": what a reload starts with.
std::string reloading_state();

} // namespace sonic::sys
