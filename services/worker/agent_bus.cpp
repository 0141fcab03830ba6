// org.buildyard.Agent1 at /org/buildyard/Agent1: what the master calls on a
// worker. The table below is the whole interface (dbus/org.buildyard.Agent1.xml).

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/bus.hpp"
#include "worker/agent.hpp"

namespace by::worker {

namespace {

// Only the master we attached to may drive us. Everyone else (including a
// master that has since restarted) is refused. The bus policy may let other
// peers reach us, so this check is ours to make.
int check_caller(sd_bus_message* m, const Agent& agent, sd_bus_error* error) {
    if (!agent.link().from_master(m)) {
        return sd_bus_error_set(error, bus::error::AccessDenied,
                                "Only the master this worker is attached to may call it.");
    }
    return 0;
}

int method_start_build(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    auto& agent = *static_cast<Agent*>(userdata);
    int r = check_caller(m, agent, error);
    if (r < 0) {
        return r;
    }
    uint64_t id = 0;
    const char* builder = nullptr;
    r = sd_bus_message_read(m, "ts", &id, &builder);
    if (r < 0) {
        return r;
    }
    std::vector<std::string> steps;
    r = bus::read_strv(m, steps);
    if (r < 0) {
        return r;
    }
    bus::StringMap environment;
    r = bus::read_string_map(m, environment);
    if (r < 0) {
        return r;
    }
    bus::StringMap limits;
    r = bus::read_string_map(m, limits);
    if (r < 0) {
        return r;
    }
    r = agent.start_build(id, builder, std::move(steps), std::move(environment), limits, error);
    if (r < 0) {
        return r;
    }
    return sd_bus_reply_method_return(m, nullptr);
}

int method_cancel_build(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    auto& agent = *static_cast<Agent*>(userdata);
    int r = check_caller(m, agent, error);
    if (r < 0) {
        return r;
    }
    uint64_t id = 0;
    r = sd_bus_message_read(m, "t", &id);
    if (r < 0) {
        return r;
    }
    r = agent.cancel_build(id, error);
    if (r < 0) {
        return r;
    }
    return sd_bus_reply_method_return(m, nullptr);
}

int method_set_keepalive(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    auto& agent = *static_cast<Agent*>(userdata);
    int r = check_caller(m, agent, error);
    if (r < 0) {
        return r;
    }
    uint64_t interval = 0;
    r = sd_bus_message_read(m, "t", &interval);
    if (r < 0) {
        return r;
    }
    r = agent.set_keepalive(interval, error);
    if (r < 0) {
        return r;
    }
    return sd_bus_reply_method_return(m, nullptr);
}

int method_ping(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    auto& agent = *static_cast<Agent*>(userdata);
    int r = check_caller(m, agent, error);
    if (r < 0) {
        return r;
    }
    return sd_bus_reply_method_return(m, nullptr);
}

// Stop and Remove: `(agent.*how)(reason)` after the reply.
int stop_with(sd_bus_message* m, void* userdata, sd_bus_error* error, void (Agent::*how)(const std::string&)) {
    auto& agent = *static_cast<Agent*>(userdata);
    int r = check_caller(m, agent, error);
    if (r < 0) {
        return r;
    }
    const char* reason = nullptr;
    r = sd_bus_message_read(m, "s", &reason);
    if (r < 0) {
        return r;
    }
    // Reply first: the reply is queued ahead of anything stopping does.
    r = sd_bus_reply_method_return(m, nullptr);
    (agent.*how)(reason);
    return r;
}

int method_stop(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    return stop_with(m, userdata, error, &Agent::stop);
}

int method_remove(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    return stop_with(m, userdata, error, &Agent::remove);
}

// UNPRIVILEGED: sd-bus would otherwise demand the caller's uid or
// CAP_SYS_ADMIN; check_caller is the real gate.
const sd_bus_vtable agent_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD_WITH_NAMES("StartBuild", "tsasa{ss}a{ss}",
                             SD_BUS_PARAM(build) SD_BUS_PARAM(builder) SD_BUS_PARAM(steps)
                                 SD_BUS_PARAM(environment) SD_BUS_PARAM(limits),
                             "", , method_start_build, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("CancelBuild", "t", SD_BUS_PARAM(build), "", , method_cancel_build,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD("Ping", "", "", method_ping, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("SetKeepalive", "t", SD_BUS_PARAM(interval), "", , method_set_keepalive,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("Stop", "s", SD_BUS_PARAM(reason), "", , method_stop, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("Remove", "s", SD_BUS_PARAM(reason), "", , method_remove, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_VTABLE_END,
};

}  // namespace

int export_agent(sd_bus* bus, Agent& agent, SlotPtr& slot) {
    sd_bus_slot* s = nullptr;
    int r = sd_bus_add_object_vtable(bus, &s, bus::agent_path, bus::agent_iface, agent_vtable, &agent);
    if (r < 0) {
        return r;
    }
    slot.reset(s);
    return 0;
}

}  // namespace by::worker
