// The WorkerLink1 calls that report a build's progress. They are the same
// over the system bus and over TCP: only the bus and the destination (the
// master's unique name, or none on a peer-to-peer connection) differ.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <systemd/sd-bus.h>

#include "common/build_limits.hpp"

namespace by::worker::reports {

// Sent without expecting a reply; order on one connection is kept.
int step_started(sd_bus* bus, const char* destination, uint64_t build, unsigned step);
int output(sd_bus* bus, const char* destination, uint64_t build, std::string_view data);
// Expects a reply; a refusal is logged.
int build_done(sd_bus* bus, const char* destination, uint64_t build, const std::string& result, int exit_status,
               const BuildUsage& usage);
// WorkerLink1.ShutdownGracefully: this worker wants no new builds, and to be
// told Agent1.Stop once its running ones have ended. Expects a reply; a
// refusal is logged.
int shutdown_gracefully(sd_bus* bus, const char* destination);

}  // namespace by::worker::reports
