// Every call to a worker's Agent1 goes to its link: the worker's own TCP
// connection for a remote or latent worker, the system bus for a local one.
#pragma once

#include <systemd/sd-bus.h>

#include "common/raii.hpp"
#include "master/worker.hpp"

namespace by::master {

// `system_bus` for a local worker, its own connection for a remote one.
inline sd_bus* link_of(sd_bus* system_bus, const Worker& w) { return w.link_bus ? w.link_bus : system_bus; }

// A new call of `member` on `w`'s Agent1.
int new_agent_call(sd_bus* system_bus, const Worker& w, const char* member, MessagePtr& out);

}  // namespace by::master
