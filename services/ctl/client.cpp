#include "ctl/client.hpp"

#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "ctl/decode.hpp"

namespace by::ctl {
namespace {

constexpr const char* properties_iface = "org.freedesktop.DBus.Properties";

Failure reply_failure(const char* member, int r) {
    return Failure{exit_code::bus, fmt::format("cannot read the reply of {}: {}", member,
                                               std::strerror(-r))};
}

Failure lost_bus(int r) {
    return Failure{exit_code::bus,
                   fmt::format("lost the connection to the system bus: {}", std::strerror(-r))};
}

}  // namespace

Expected<Client> Client::connect() {
    BusPtr bus;
    int r = by::bus::open_system(bus);
    if (r < 0) {
        const char* address = std::getenv("DBUS_SYSTEM_BUS_ADDRESS");
        return connect_failure(-r, address ? address : "");
    }
    return Client(std::move(bus));
}

Expected<MessagePtr> Client::call_message(sd_bus_message* m) {
    BusError error;
    sd_bus_message* reply = nullptr;
    int r = sd_bus_call(bus_.get(), m, 0, error.get(), &reply);
    if (r < 0) {
        const char* member = sd_bus_message_get_member(m);
        return bus_failure(error.name(), error.message(), -r, member ? member : "");
    }
    return MessagePtr(reply);
}

Expected<std::string> Client::read_path_reply(Expected<MessagePtr> reply, const char* member) {
    if (!reply) {
        return reply.error();
    }
    const char* path = nullptr;
    int r = sd_bus_message_read_basic(reply->get(), 'o', &path);
    if (r < 0) {
        return reply_failure(member, r);
    }
    return std::string(path);
}

Expected<std::string> Client::submit_build(const std::string& builder,
                                           const StringMap& properties) {
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(bus_.get(), &raw, by::bus::master_name,
                                           by::bus::master_path, by::bus::master_iface,
                                           "SubmitBuild");
    if (r < 0) {
        return Failure{exit_code::bus, fmt::format("cannot build the SubmitBuild call: {}",
                                                   std::strerror(-r))};
    }
    MessagePtr m(raw);
    r = sd_bus_message_append_basic(m.get(), 's', builder.c_str());
    if (r >= 0) {
        r = by::bus::append_string_map(m.get(), properties);
    }
    if (r < 0) {
        return Failure{exit_code::bus, fmt::format("cannot build the SubmitBuild call: {}",
                                                   std::strerror(-r))};
    }
    return read_path_reply(call_message(m.get()), "SubmitBuild");
}

Expected<std::string> Client::get_worker(const std::string& name) {
    return read_path_reply(
        call(by::bus::master_path, by::bus::master_iface, "GetWorker", "s", name.c_str()),
        "GetWorker");
}

Expected<std::string> Client::get_build(uint64_t id) {
    return read_path_reply(call(by::bus::master_path, by::bus::master_iface, "GetBuild", "t", id),
                           "GetBuild");
}

Expected<std::vector<WorkerEntry>> Client::list_workers() {
    auto reply = call(by::bus::master_path, by::bus::master_iface, "ListWorkers", nullptr);
    if (!reply) {
        return reply.error();
    }
    sd_bus_message* m = reply->get();
    std::vector<WorkerEntry> out;
    int r = sd_bus_message_enter_container(m, 'a', "(sso)");
    if (r < 0) {
        return reply_failure("ListWorkers", r);
    }
    const char *name = nullptr, *state = nullptr, *path = nullptr;
    while ((r = sd_bus_message_read(m, "(sso)", &name, &state, &path)) > 0) {
        out.push_back(WorkerEntry{name, state, path});
    }
    if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0) {
        return reply_failure("ListWorkers", r);
    }
    return out;
}

Expected<std::vector<ClusterMember>> Client::list_cluster_members() {
    auto reply = call(by::bus::master_path, by::bus::master_iface, "ListClusterMembers", nullptr);
    if (!reply) {
        return reply.error();
    }
    sd_bus_message* m = reply->get();
    std::vector<ClusterMember> out;
    int r = sd_bus_message_enter_container(m, 'a', "(sstttbssu)");
    if (r < 0) {
        return reply_failure("ListClusterMembers", r);
    }
    for (;;) {
        const char *name = nullptr, *state = nullptr, *host = nullptr, *address = nullptr;
        ClusterMember c;
        int self = 0;
        r = sd_bus_message_read(m, "(sstttbssu)", &name, &state, &c.fence, &c.heartbeat_age, &c.started_at, &self,
                                &host, &address, &c.pid);
        if (r <= 0) {
            break;
        }
        c.name = name;
        c.state = state;
        c.self = self != 0;
        c.host = host;
        c.address = address;
        out.push_back(std::move(c));
    }
    if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0) {
        return reply_failure("ListClusterMembers", r);
    }
    return out;
}

Expected<std::vector<BuildEntry>> Client::list_builds(uint64_t limit) {
    // The master answers at most 1000 builds per call: page through older
    // ones until `limit` (0: all) or the first build.
    std::vector<BuildEntry> out;
    uint64_t before = 0;
    while (limit == 0 || out.size() < limit) {
        auto reply = call(by::bus::master_path, by::bus::master_iface, "ListBuildsBefore", "tt", before,
                          limit == 0 ? uint64_t{0} : limit - out.size());
        if (!reply) {
            return reply.error();
        }
        sd_bus_message* m = reply->get();
        int r = sd_bus_message_enter_container(m, 'a', "(tsssso)");
        if (r < 0) {
            return reply_failure("ListBuildsBefore", r);
        }
        const size_t had = out.size();
        uint64_t id = 0;
        const char *builder = nullptr, *worker = nullptr, *state = nullptr, *result = nullptr,
                   *path = nullptr;
        while ((r = sd_bus_message_read(m, "(tsssso)", &id, &builder, &worker, &state, &result,
                                        &path)) > 0) {
            out.push_back(BuildEntry{id, builder, worker, state, result, path});
        }
        if (r < 0 || (r = sd_bus_message_exit_container(m)) < 0) {
            return reply_failure("ListBuildsBefore", r);
        }
        if (out.size() == had || (before != 0 && out.back().id >= before)) {
            break;  // no older builds (or a master that does not page)
        }
        before = out.back().id;
    }
    return out;
}

namespace {
// A call whose reply carries nothing: only success or failure matters.
Status done(Expected<MessagePtr> reply) {
    if (!reply) {
        return reply.error();
    }
    return ok_status();
}
}  // namespace

Status Client::reload() {
    return done(call(by::bus::master_path, by::bus::master_iface, "Reload", nullptr));
}

Expected<std::string> Client::describe() {
    auto reply = call(by::bus::master_path, by::bus::master_iface, "Describe", nullptr);
    if (!reply) {
        return reply.error();
    }
    const char* text = nullptr;
    int r = sd_bus_message_read_basic(reply->get(), 's', &text);
    if (r < 0) {
        return reply_failure("Describe", r);
    }
    return std::string(text);
}

Status Client::pause(const std::string& worker_path, const std::string& reason) {
    return done(call(worker_path, by::bus::worker_iface, "Pause", "s", reason.c_str()));
}

Status Client::unpause(const std::string& worker_path) {
    return done(call(worker_path, by::bus::worker_iface, "Unpause", nullptr));
}

Status Client::shutdown(const std::string& worker_path, bool graceful) {
    return done(call(worker_path, by::bus::worker_iface, "Shutdown", "b", graceful ? 1 : 0));
}

Status Client::cancel(const std::string& build_path) {
    return done(call(build_path, by::bus::build_iface, "Cancel", nullptr));
}

Expected<std::string> Client::read_log(const std::string& build_path, uint64_t offset,
                                       uint64_t max) {
    auto reply = call(build_path, by::bus::build_iface, "ReadLog", "tt", offset, max);
    if (!reply) {
        return reply.error();
    }
    const void* data = nullptr;
    size_t size = 0;
    int r = sd_bus_message_read_array(reply->get(), 'y', &data, &size);
    if (r < 0) {
        return reply_failure("ReadLog", r);
    }
    return std::string(static_cast<const char*>(data), size);
}

Expected<PropertyMap> Client::get_all(const std::string& path, const char* interface) {
    auto reply = call(path, properties_iface, "GetAll", "s", interface);
    if (!reply) {
        return reply.error();
    }
    PropertyMap props;
    int r = read_property_map(reply->get(), props);
    if (r < 0) {
        return reply_failure("GetAll", r);
    }
    return props;
}

Expected<std::string> Client::get_string(const std::string& path, const char* interface,
                                         const char* property) {
    auto reply = call(path, properties_iface, "Get", "ss", interface, property);
    if (!reply) {
        return reply.error();
    }
    const char* s = nullptr;
    int r = sd_bus_message_read(reply->get(), "v", "s", &s);
    if (r < 0) {
        return reply_failure(property, r);
    }
    return std::string(s);
}

Expected<uint64_t> Client::get_uint64(const std::string& path, const char* interface,
                                      const char* property) {
    auto reply = call(path, properties_iface, "Get", "ss", interface, property);
    if (!reply) {
        return reply.error();
    }
    uint64_t v = 0;
    int r = sd_bus_message_read(reply->get(), "v", "t", &v);
    if (r < 0) {
        return reply_failure(property, r);
    }
    return v;
}

Expected<SlotPtr> Client::match_signal(const std::string& path, const char* interface,
                                       const char* member, sd_bus_message_handler_t handler,
                                       void* userdata) {
    sd_bus_slot* slot = nullptr;
    int r = sd_bus_match_signal(bus_.get(), &slot, by::bus::master_name, path.c_str(), interface,
                                member, handler, userdata);
    if (r < 0) {
        return Failure{exit_code::bus, fmt::format("cannot watch for {}.{}: {}", interface, member,
                                                   std::strerror(-r))};
    }
    return SlotPtr(slot);
}

Expected<SlotPtr> Client::match_master_owner(sd_bus_message_handler_t handler, void* userdata) {
    std::string rule = fmt::format(
        "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
        "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='{}'",
        by::bus::master_name);
    sd_bus_slot* slot = nullptr;
    int r = sd_bus_add_match(bus_.get(), &slot, rule.c_str(), handler, userdata);
    if (r < 0) {
        return Failure{exit_code::bus, fmt::format("cannot watch buildyard-masterd: {}",
                                                   std::strerror(-r))};
    }
    return SlotPtr(slot);
}

Status Client::process() {
    for (;;) {
        int r = sd_bus_process(bus_.get(), nullptr);
        if (r < 0) {
            return lost_bus(r);
        }
        if (r == 0) {
            return ok_status();
        }
    }
}

Status Client::wait(uint64_t timeout_usec) {
    int r = sd_bus_wait(bus_.get(), timeout_usec);
    if (r < 0 && r != -EINTR) {
        return lost_bus(r);
    }
    return ok_status();
}

}  // namespace by::ctl
