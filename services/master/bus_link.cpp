// org.buildyard.WorkerLink1 on /org/buildyard/Master1: what workers call.
// Anyone may call it (the bus policy lets other uids in); the master checks
// who the caller is itself.
#include <string>

#include "common/bus.hpp"
#include "master/bus_reply.hpp"

namespace by::master {

namespace {

Master& of(void* userdata) { return *static_cast<Master*>(userdata); }

Caller caller_of(sd_bus_message* m) {
    Caller c;
    const char* sender = sd_bus_message_get_sender(m);
    c.sender = sender ? sender : "";
    sd_bus_creds* raw = nullptr;
    if (sd_bus_query_sender_creds(m, SD_BUS_CREDS_UID | SD_BUS_CREDS_EUID | SD_BUS_CREDS_PID | SD_BUS_CREDS_UNIT |
                                         SD_BUS_CREDS_AUGMENT,
                                  &raw) >= 0) {
        CredsPtr creds(raw);
        uid_t uid = 0;
        if (sd_bus_creds_get_euid(raw, &uid) >= 0 || sd_bus_creds_get_uid(raw, &uid) >= 0) {
            c.have_uid = true;
            c.uid = uid;
        }
        pid_t pid = 0;
        if (sd_bus_creds_get_pid(raw, &pid) >= 0) {
            c.pid = pid;
        }
        const char* unit = nullptr;
        if (sd_bus_creds_get_unit(raw, &unit) >= 0 && unit) {
            c.unit = unit;
        }
    }
    return c;
}

const char* sender_of(sd_bus_message* m) {
    sd_bus* bus = sd_bus_message_get_bus(m);
    if (sd_bus_is_bus_client(bus) <= 0) {
        // Peer to peer: a remote worker's TCP connection, named "tcp#N" by
        // remote.cpp. A peer may write any sender field, so that is ignored.
        const char* d = nullptr;
        return sd_bus_get_description(bus, &d) >= 0 && d ? d : "";
    }
    const char* s = sd_bus_message_get_sender(m);
    return s ? s : "";
}

int attach(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    const char* name = nullptr;
    int r = sd_bus_message_read(m, "s", &name);
    if (r < 0) return r;
    if (auto bad = limits::check("the worker name", name, limits::name)) return too_long(*bad, e);
    bus::StringMap info;
    if ((r = bus::read_string_map(m, info)) < 0) return r;
    if (auto bad = limits::check_map("worker info", info)) return too_long(*bad, e);
    std::string path;
    Status s = of(userdata).workers().attach(caller_of(m), name, info, path);
    if (!s) return fail(s, e);
    return sd_bus_reply_method_return(m, "o", path.c_str());
}

int detach(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    const char* reason = nullptr;
    int r = sd_bus_message_read(m, "s", &reason);
    if (r < 0) return r;
    if (auto bad = limits::check("the reason", reason, limits::reason)) return too_long(*bad, e);
    return reply_ok(m, of(userdata).workers().link_detach(sender_of(m), reason), e, "");
}

int step_started(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    uint64_t id = 0;
    uint32_t step = 0;
    int r = sd_bus_message_read(m, "tu", &id, &step);
    if (r < 0) return r;
    return reply_ok(m, of(userdata).builds().step_started(sender_of(m), id, step), e, "");
}

int output(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    uint64_t id = 0;
    int r = sd_bus_message_read(m, "t", &id);
    if (r < 0) return r;
    const void* data = nullptr;
    size_t size = 0;
    if ((r = sd_bus_message_read_array(m, 'y', &data, &size)) < 0) return r;
    return reply_ok(m, of(userdata).builds().output(sender_of(m), id, data, size), e, "");
}

int build_done(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    uint64_t id = 0;
    const char* result = nullptr;
    int32_t status = 0;
    int r = sd_bus_message_read(m, "tsi", &id, &result, &status);
    if (r < 0) return r;
    if (auto bad = limits::check("the result", result, limits::reason)) return too_long(*bad, e);
    std::map<std::string, uint64_t> usage;
    r = sd_bus_message_enter_container(m, 'a', "{st}");
    if (r < 0) return r;
    const char* key = nullptr;
    uint64_t value = 0;
    while ((r = sd_bus_message_read(m, "{st}", &key, &value)) > 0) {
        usage[key] = value;
    }
    if (r < 0) return r;
    r = sd_bus_message_exit_container(m);
    if (r < 0) return r;
    // Answered once recorded, with the others of this loop turn (build_submit.cpp).
    auto call = keep_call(m);
    Status s = of(userdata).builds().build_done(sender_of(m), id, result, status, usage_from_map(usage),
                                                [call](const Status& done) {
                                                    if (!answer_failure(call->get(), done)) {
                                                        sd_bus_reply_method_return(call->get(), "");
                                                    }
                                                });
    return s ? 1 : fail(s, e);
}

int shutdown_gracefully(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    return reply_ok(m, of(userdata).workers().link_shutdown(sender_of(m)), e, "");
}

constexpr uint64_t U = SD_BUS_VTABLE_UNPRIVILEGED;

const sd_bus_vtable link_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD_WITH_ARGS("Attach", SD_BUS_ARGS("s", name, "a{ss}", info), SD_BUS_RESULT("o", worker), attach, U),
    SD_BUS_METHOD_WITH_ARGS("Detach", SD_BUS_ARGS("s", reason), SD_BUS_NO_RESULT, detach, U),
    SD_BUS_METHOD_WITH_ARGS("StepStarted", SD_BUS_ARGS("t", build, "u", step), SD_BUS_NO_RESULT, step_started, U),
    SD_BUS_METHOD_WITH_ARGS("Output", SD_BUS_ARGS("t", build, "ay", data), SD_BUS_NO_RESULT, output, U),
    SD_BUS_METHOD_WITH_ARGS("BuildDone", SD_BUS_ARGS("t", build, "s", result, "i", exit_status, "a{st}", usage),
                            SD_BUS_NO_RESULT,
                            build_done, U),
    SD_BUS_METHOD_WITH_ARGS("ShutdownGracefully", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, shutdown_gracefully, U),
    SD_BUS_VTABLE_END,
};

}  // namespace

int register_link_object(Master& m, sd_bus* bus, std::vector<SlotPtr>& slots) {
    sd_bus_slot* s = nullptr;
    int r = sd_bus_add_object_vtable(bus, &s, bus::master_path, bus::link_iface,
                                     counted_vtable(bus::link_iface, link_vtable), &m);
    if (r < 0) return r;
    slots.emplace_back(s);
    return 0;
}

}  // namespace by::master
