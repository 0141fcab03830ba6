// What a Worker1 or Build1 object last told the bus, so that a change
// notification names only the properties that really changed. sd-bus builds
// a PropertiesChanged signal by calling the getter of every property it is
// given; naming all of Worker1's properties on every change cost more than
// half of the master's instructions per build (bench/callgrind).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <systemd/sd-bus.h>

#include "master/build.hpp"

namespace by::master {

// The values of Worker1's changeable properties, as its getters return them.
struct WorkerShown {
    std::string name;
    std::string type;
    std::string state;
    bool connected = false;
    std::string master;
    bool paused = false;
    std::string pause_reason;
    uint32_t max_builds = 0;
    uint32_t running_builds = 0;
    std::map<std::string, std::string> properties;
    std::map<std::string, std::string> default_properties;
    std::map<std::string, std::string> info;
    uint64_t keepalive_interval = 0;
    uint64_t missing_timeout = 0;
    std::vector<std::string> notify_on_missing;
    uint64_t last_connected = 0;
    uint64_t last_disconnected = 0;
    bool configured = true;
    uint64_t missing_since = 0;
    bool missing_notified = false;
    int64_t build_wait_timeout = 0;
    std::string backend;
    std::string instance_start;
    std::string instance;
    uint32_t start_failures = 0;
    uint64_t quarantined_until = 0;
    std::string last_start_error;
};

// One row per Worker1 property, in introspection order: the one list that
// the bus getters (bus_objects.cpp), the change tracking
// (changed_properties), Describe (worker_registry.cpp) and dbus/ read.
struct WorkerProperty {
    const char* name;
    const char* signature;
    bool constant;            // never changes: SD_BUS_VTABLE_PROPERTY_CONST
    const char* describe_key; // its key in Master1.Describe's JSON; nullptr: not there
    bool latent_only;         // Describe puts it under "latent", for latent workers only
    int (*append)(sd_bus_message* reply, const WorkerShown& s);
    bool (*differs)(const WorkerShown& a, const WorkerShown& b);
    void (*to_json)(nlohmann::json& out, const WorkerShown& s);
};
extern const std::array<WorkerProperty, 27> worker_properties;

// The Worker1 property names whose values differ, in introspection order.
std::vector<const char*> changed_properties(const WorkerShown& before, const WorkerShown& now);

// The Build1 property names whose values differ (Id, Builder and RequestId
// never change), in introspection order.
std::vector<const char*> changed_properties(const Build& before, const Build& now);

}  // namespace by::master
