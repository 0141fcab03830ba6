#include "master/agent_call.hpp"

#include "common/bus.hpp"

namespace by::master {

int new_agent_call(sd_bus* system_bus, const Worker& w, const char* member, MessagePtr& out) {
    sd_bus_message* m = nullptr;
    // A remote link is peer to peer: no destination.
    const char* destination = w.link_bus ? nullptr : w.bus_name.c_str();
    int r = sd_bus_message_new_method_call(link_of(system_bus, w), &m, destination, bus::agent_path, bus::agent_iface,
                                           member);
    out.reset(m);
    return r;
}

}  // namespace by::master
