// buildyardctl's connection to org.buildyard.Master1: plain sd-bus calls on
// the public interfaces only, so that everything it does is also possible
// with busctl. Every call returns a value or the Failure to report.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <systemd/sd-bus.h>

#include "common/bus.hpp"
#include "common/raii.hpp"
#include "ctl/format.hpp"
#include "ctl/outcome.hpp"
#include "ctl/value.hpp"

namespace by::ctl {

// One entry of Master1.ListWorkers.
struct WorkerEntry {
    std::string name;
    std::string state;
    std::string path;
};

// One entry of Master1.ListBuilds.
struct BuildEntry {
    uint64_t id = 0;
    std::string builder;
    std::string worker;
    std::string state;
    std::string result;
    std::string path;
};

class Client {
public:
    // Opens the system bus (DBUS_SYSTEM_BUS_ADDRESS moves it).
    static Expected<Client> connect();

    sd_bus* bus() const { return bus_.get(); }

    // org.buildyard.Master1 on /org/buildyard/Master1
    Expected<std::string> submit_build(const std::string& builder, const StringMap& properties);
    Expected<std::string> get_worker(const std::string& name);
    Expected<std::string> get_build(uint64_t id);
    Expected<std::vector<WorkerEntry>> list_workers();
    // The newest `limit` builds (0: all), over as many calls as it takes.
    Expected<std::vector<BuildEntry>> list_builds(uint64_t limit);
    Expected<std::vector<ClusterMember>> list_cluster_members();
    Status reload();
    // Master1.Describe: the master's whole state as one JSON document.
    Expected<std::string> describe();

    // org.buildyard.Worker1 on a worker's path
    Status pause(const std::string& worker_path, const std::string& reason);
    Status unpause(const std::string& worker_path);
    Status shutdown(const std::string& worker_path, bool graceful);

    // org.buildyard.Build1 on a build's path
    Status cancel(const std::string& build_path);
    // Up to max bytes of the log from offset; empty at the current end.
    Expected<std::string> read_log(const std::string& build_path, uint64_t offset, uint64_t max);

    // org.freedesktop.DBus.Properties on the master's objects
    Expected<PropertyMap> get_all(const std::string& path, const char* interface);
    Expected<std::string> get_string(const std::string& path, const char* interface,
                                     const char* property);
    Expected<uint64_t> get_uint64(const std::string& path, const char* interface,
                                  const char* property);

    // Signal match on the master's objects (sender org.buildyard.Master1).
    // Active when this returns; the handler runs from process().
    Expected<SlotPtr> match_signal(const std::string& path, const char* interface,
                                   const char* member, sd_bus_message_handler_t handler,
                                   void* userdata);
    // A match on NameOwnerChanged of org.buildyard.Master1.
    Expected<SlotPtr> match_master_owner(sd_bus_message_handler_t handler, void* userdata);

    // Runs the handlers of every message already received.
    Status process();
    // Waits until a message arrives or timeout_usec passes (UINT64_MAX: no timeout).
    Status wait(uint64_t timeout_usec);

private:
    explicit Client(BusPtr bus) : bus_(std::move(bus)) {}

    template <class... Args>
    Expected<MessagePtr> call(const std::string& path, const char* interface, const char* member,
                              const char* types, Args... args) {
        BusError error;
        sd_bus_message* reply = nullptr;
        int r = sd_bus_call_method(bus_.get(), by::bus::master_name, path.c_str(), interface,
                                   member, error.get(), &reply, types, args...);
        if (r < 0) {
            return bus_failure(error.name(), error.message(), -r, member);
        }
        return MessagePtr(reply);
    }
    Expected<MessagePtr> call_message(sd_bus_message* m);
    Expected<std::string> read_path_reply(Expected<MessagePtr> reply, const char* member);

    BusPtr bus_;
};

}  // namespace by::ctl
