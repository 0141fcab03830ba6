// The org.buildyard.Master1 object: the whole interface is the vtable below.
#include <memory>
#include <string>

#include "common/bus.hpp"
#include "master/bus_reply.hpp"
#include "version.hpp"

namespace by::master {

namespace {

Master& of(void* userdata) { return *static_cast<Master*>(userdata); }

int submit_build(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    int r = bus::require_admin(m, e, "submitting builds");
    if (r < 0) return r;
    const char* builder = nullptr;
    if ((r = sd_bus_message_read(m, "s", &builder)) < 0) return r;
    if (auto bad = limits::check("the builder name", builder, limits::name)) return too_long(*bad, e);
    bus::StringMap props;
    if ((r = bus::read_string_map(m, props)) < 0) return r;
    if (auto bad = limits::check_map("build properties", props)) return too_long(*bad, e);
    // Answered once recorded, with the others of this loop iteration (build_submit.cpp).
    auto call = keep_call(m);
    Status s = of(userdata).builds().submit(builder, props, [call](const Status& done, uint64_t id) {
        if (!answer_failure(call->get(), done)) {
            std::string path = bus::path_encode(bus::build_prefix, std::to_string(id));
            sd_bus_reply_method_return(call->get(), "o", path.c_str());
        }
    });
    return s ? 1 : fail(s, e);
}

int get_worker(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    const char* name = nullptr;
    int r = sd_bus_message_read(m, "s", &name);
    if (r < 0) return r;
    if (auto bad = limits::check("the worker name", name, limits::name)) return too_long(*bad, e);
    Worker* w = of(userdata).find_worker(name);
    if (!w) {
        return sd_bus_error_setf(e, bus::error::NoSuchWorker, "no worker named '%s'", name);
    }
    return sd_bus_reply_method_return(m, "o", w->path.c_str());
}

int get_builder(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    const char* name = nullptr;
    int r = sd_bus_message_read(m, "s", &name);
    if (r < 0) return r;
    if (auto bad = limits::check("the builder name", name, limits::name)) return too_long(*bad, e);
    if (!of(userdata).find_builder(name)) {
        return sd_bus_error_set(e, bus::error::NoSuchBuilder, no_such_builder(of(userdata).config(), name).c_str());
    }
    return sd_bus_reply_method_return(m, "o", bus::path_encode(bus::builder_prefix, name).c_str());
}

int get_build(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    uint64_t id = 0;
    int r = sd_bus_message_read(m, "t", &id);
    if (r < 0) return r;
    if (!of(userdata).builds().find(id)) {
        return sd_bus_error_setf(e, bus::error::NoSuchBuild, "no build %llu", static_cast<unsigned long long>(id));
    }
    return sd_bus_reply_method_return(m, "o", bus::path_encode(bus::build_prefix, std::to_string(id)).c_str());
}

int list_workers(sd_bus_message* m, void* userdata, sd_bus_error*) {
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_return(m, &raw);
    if (r < 0) return r;
    MessagePtr reply(raw);
    if ((r = sd_bus_message_open_container(raw, 'a', "(sso)")) < 0) return r;
    for (const auto& [name, w] : of(userdata).registry().all()) {
        r = sd_bus_message_append(raw, "(sso)", name.c_str(), std::string(to_string(w->state())).c_str(),
                                  w->path.c_str());
        if (r < 0) return r;
    }
    if ((r = sd_bus_message_close_container(raw)) < 0) return r;
    return sd_bus_send(nullptr, raw, nullptr);
}

int reply_builds(sd_bus_message* m, const std::vector<Build>& builds) {
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_return(m, &raw);
    if (r < 0) return r;
    MessagePtr reply(raw);
    if ((r = sd_bus_message_open_container(raw, 'a', "(tsssso)")) < 0) return r;
    for (const Build& b : builds) {
        std::string path = bus::path_encode(bus::build_prefix, std::to_string(b.id));
        r = sd_bus_message_append(raw, "(tsssso)", b.id, b.builder.c_str(), b.worker.c_str(),
                                  std::string(to_string(b.state)).c_str(), std::string(to_string(b.result)).c_str(),
                                  path.c_str());
        if (r < 0) return r;
    }
    if ((r = sd_bus_message_close_container(raw)) < 0) return r;
    return sd_bus_send(nullptr, raw, nullptr);
}

int list_builds(sd_bus_message* m, void* userdata, sd_bus_error*) {
    uint64_t limit = 0;
    int r = sd_bus_message_read(m, "t", &limit);
    if (r < 0) return r;
    return reply_builds(m, of(userdata).builds().list(0, limit));
}

int list_builds_before(sd_bus_message* m, void* userdata, sd_bus_error*) {
    uint64_t before = 0, limit = 0;
    int r = sd_bus_message_read(m, "tt", &before, &limit);
    if (r < 0) return r;
    return reply_builds(m, of(userdata).builds().list(before, limit));
}

// name, state, fence, heartbeat age, started at, this master, host,
// address, pid (dbus/org.buildyard.Master1.xml).
int list_cluster_members(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    std::string error;
    const auto members = of(userdata).cluster().members(error);
    if (!members) {
        return bus::set_error(e, bus::error::Internal, "cannot list the cluster's members: " + error);
    }
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_return(m, &raw);
    if (r < 0) return r;
    MessagePtr reply(raw);
    if ((r = sd_bus_message_open_container(raw, 'a', "(sstttbssu)")) < 0) return r;
    for (const MemberView& v : *members) {
        r = sd_bus_message_append(raw, "(sstttbssu)", v.row.name.c_str(), std::string(to_string(v.liveness)).c_str(),
                                  v.row.fence, v.heartbeat_age, v.row.started_at, static_cast<int>(v.self),
                                  v.row.host.c_str(), v.row.address.c_str(), v.row.pid);
        if (r < 0) return r;
    }
    if ((r = sd_bus_message_close_container(raw)) < 0) return r;
    return sd_bus_send(nullptr, raw, nullptr);
}

int reload(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    if (int r = bus::require_admin(m, e, "reloading the configuration"); r < 0) return r;
    return reply_ok(m, of(userdata).reload(), e, "");
}

int describe(sd_bus_message* m, void* userdata, sd_bus_error*) {
    return sd_bus_reply_method_return(m, "s", of(userdata).describe().c_str());
}

int prop_version(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void*, sd_bus_error*) {
    return sd_bus_message_append(reply, "s", BUILDYARD_VERSION);
}

int prop_name(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata, sd_bus_error*) {
    return sd_bus_message_append(reply, "s", of(userdata).config().master.name.c_str());
}

int prop_tls_fingerprint(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata,
                         sd_bus_error*) {
    return sd_bus_message_append(reply, "s", of(userdata).tls_fingerprint().c_str());
}

int prop_connected(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata,
                   sd_bus_error*) {
    return sd_bus_message_append(reply, "u", of(userdata).registry().connected());
}

int prop_running(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata,
                 sd_bus_error*) {
    return sd_bus_message_append(reply, "u", of(userdata).queue().running());
}

int prop_pending(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata,
                 sd_bus_error*) {
    return sd_bus_message_append(reply, "u", of(userdata).queue().pending());
}

// Every method is reachable by anyone as far as sd-bus is concerned; the bus
// policy (dbus/org.buildyard.Master1.conf) decides who may change things,
// and the methods that change things check the caller again themselves
// (bus::require_admin), in case the policy is permissive or broken.
constexpr uint64_t U = SD_BUS_VTABLE_UNPRIVILEGED;

const sd_bus_vtable master_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD_WITH_ARGS("SubmitBuild", SD_BUS_ARGS("s", builder, "a{ss}", properties),
                            SD_BUS_RESULT("o", build), submit_build, U),
    SD_BUS_METHOD_WITH_ARGS("GetWorker", SD_BUS_ARGS("s", name), SD_BUS_RESULT("o", worker), get_worker, U),
    SD_BUS_METHOD_WITH_ARGS("GetBuilder", SD_BUS_ARGS("s", name), SD_BUS_RESULT("o", builder), get_builder, U),
    SD_BUS_METHOD_WITH_ARGS("GetBuild", SD_BUS_ARGS("t", id), SD_BUS_RESULT("o", build), get_build, U),
    SD_BUS_METHOD_WITH_ARGS("ListWorkers", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sso)", workers), list_workers, U),
    SD_BUS_METHOD_WITH_ARGS("ListBuilds", SD_BUS_ARGS("t", limit), SD_BUS_RESULT("a(tsssso)", builds), list_builds, U),
    SD_BUS_METHOD_WITH_ARGS("ListBuildsBefore", SD_BUS_ARGS("t", before, "t", limit), SD_BUS_RESULT("a(tsssso)", builds),
                            list_builds_before, U),
    SD_BUS_METHOD_WITH_ARGS("ListClusterMembers", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sstttbssu)", members),
                            list_cluster_members, U),
    SD_BUS_METHOD_WITH_ARGS("Reload", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, reload, U),
    SD_BUS_METHOD_WITH_ARGS("Describe", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", json), describe, U),
    SD_BUS_SIGNAL_WITH_ARGS("BuildFinished", SD_BUS_ARGS("o", build, "s", result), 0),
    SD_BUS_PROPERTY("Version", "s", prop_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Name", "s", prop_name, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("TlsFingerprint", "s", prop_tls_fingerprint, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("ConnectedWorkers", "u", prop_connected, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("RunningBuilds", "u", prop_running, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_PROPERTY("PendingBuilds", "u", prop_pending, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
    SD_BUS_VTABLE_END,
};

}  // namespace

int register_master_objects(Master& m, sd_bus* bus, std::vector<SlotPtr>& slots) {
    sd_bus_slot* s = nullptr;
    int r = sd_bus_add_object_vtable(bus, &s, bus::master_path, bus::master_iface,
                                     counted_vtable(bus::master_iface, master_vtable), &m);
    if (r < 0) return r;
    slots.emplace_back(s);
    return 0;
}

}  // namespace by::master
