// What every daemon's main() sets up the same way: SIGTERM, SIGINT and
// SIGHUP blocked for sd-event, SIGPIPE ignored, an event loop with the
// watchdog on, and the system bus attached to it.
#pragma once

#include <string>

#include "common/raii.hpp"

namespace by {

// Logs what failed and returns false on failure.
bool open_daemon_loop(EventPtr& event, BusPtr& bus);

// The state directory: `chosen` (--state-directory) if not empty, else the
// first of systemd's $STATE_DIRECTORY, else `fallback`; created if missing.
// Logs what failed and returns "" on failure.
std::string state_directory(const std::string& chosen, const char* fallback);

// One `program` per state directory: DIR/lock, flock()ed for as long as the
// returned descriptor is open. On failure returns no descriptor and says in
// `error` why, naming the other `program` when one holds the lock.
Fd lock_state_directory(const std::string& dir, const char* program, std::string& error);

}  // namespace by
