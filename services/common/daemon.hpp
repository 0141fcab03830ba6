// What every daemon's main() sets up the same way: SIGTERM, SIGINT and
// SIGHUP blocked for sd-event, SIGPIPE ignored, an event loop with the
// watchdog on, and the system bus attached to it.
#pragma once

#include "common/raii.hpp"

namespace by {

// Logs what failed and returns false on failure.
bool open_daemon_loop(EventPtr& event, BusPtr& bus);

}  // namespace by
