// The org.buildyard.Latent1 object: the whole interface is the vtable below
// (dbus/org.buildyard.Latent1.xml documents it).
#include <string>

#include "common/bus.hpp"
#include "common/bus_access.hpp"
#include "common/input_limits.hpp"
#include "common/text.hpp"
#include "latent/latent_manager.hpp"
#include "version.hpp"

namespace by::latent {

namespace {

LatentManager& of(void* userdata) { return *static_cast<LatentManager*>(userdata); }

int fail(const Verdict& v, sd_bus_error* e) { return bus::set_error(e, v.error, v.message); }

// Arguments over their limits (common/input_limits.hpp) are refused before
// anything logs them.
int too_long(const std::string& message, sd_bus_error* e) {
    return bus::set_error(e, bus::error::InvalidArgument, message);
}

int method_start(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    int r = bus::require_admin(m, e, "starting machines");
    if (r < 0) return r;
    const char *worker = nullptr, *start = nullptr, *address = nullptr, *token = nullptr, *fingerprint = nullptr;
    uint64_t lease = 0;
    if ((r = sd_bus_message_read(m, "ssssst", &worker, &start, &address, &token, &fingerprint, &lease)) < 0) return r;
    if (auto bad = limits::check("the worker name", worker, limits::name)) return too_long(*bad, e);
    for (const char* arg : {start, address, token, fingerprint}) {
        if (auto bad = limits::check("an argument", arg, limits::token)) return too_long(*bad, e);
    }
    return of(userdata).start_instance(m, worker, start, address, {token, fingerprint}, lease, e);
}

int method_stop(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    int r = bus::require_admin(m, e, "stopping machines");
    if (r < 0) return r;
    const char *worker = nullptr, *start = nullptr;
    if ((r = sd_bus_message_read(m, "ss", &worker, &start)) < 0) return r;
    if (auto bad = limits::check("the worker name", worker, limits::name)) return too_long(*bad, e);
    if (auto bad = limits::check("the start id", start, limits::token)) return too_long(*bad, e);
    return of(userdata).stop_instance(m, worker, start, e);
}

int method_renew_lease(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    int r = bus::require_admin(m, e, "renewing leases");
    if (r < 0) return r;
    const char* start = nullptr;
    uint64_t lease = 0;
    if ((r = sd_bus_message_read(m, "st", &start, &lease)) < 0) return r;
    if (auto bad = limits::check("the start id", start, limits::token)) return too_long(*bad, e);
    Verdict v = of(userdata).renew_lease(start, lease);
    return v ? sd_bus_reply_method_return(m, "") : fail(v, e);
}

int method_stop_all(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    if (int r = bus::require_admin(m, e, "stopping machines"); r < 0) return r;
    return of(userdata).stop_all(m);
}

int method_list_instances(sd_bus_message* m, void* userdata, sd_bus_error*) {
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_return(m, &raw);
    if (r < 0) return r;
    MessagePtr reply(raw);
    if ((r = sd_bus_message_open_container(raw, 'a', "(sssssttt)")) < 0) return r;
    for (const StartRow& row : of(userdata).instances()) {
        r = sd_bus_message_append(raw, "(sssssttt)", row.worker.c_str(), row.start.c_str(), row.backend.c_str(),
                                  std::string(to_string(row.phase)).c_str(), row.instance.c_str(), row.created_at,
                                  row.lease_expires, row.running_at);
        if (r < 0) return r;
    }
    if ((r = sd_bus_message_close_container(raw)) < 0) return r;
    return sd_bus_send(nullptr, raw, nullptr);
}

int method_reap(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    if (int r = bus::require_admin(m, e, "reaping machines"); r < 0) return r;
    return of(userdata).reap(m);
}

int method_reload(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    if (int r = bus::require_admin(m, e, "reloading the configuration"); r < 0) return r;
    Verdict v = of(userdata).reload();
    return v ? sd_bus_reply_method_return(m, "") : fail(v, e);
}

int prop_version(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void*, sd_bus_error*) {
    return sd_bus_message_append(reply, "s", BUILDYARD_VERSION);
}

int prop_master_name(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata,
                     sd_bus_error*) {
    return sd_bus_message_append(reply, "s", of(userdata).master_name().c_str());
}

int prop_instances(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata,
                   sd_bus_error*) {
    return sd_bus_message_append(reply, "u", of(userdata).live_instances());
}

int prop_reaped_leaks(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata,
                      sd_bus_error*) {
    return sd_bus_message_append(reply, "t", of(userdata).reaped_leaks());
}

int prop_last_reaped_at(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata,
                        sd_bus_error*) {
    return sd_bus_message_append(reply, "t", of(userdata).last_reaped_at());
}

// sd-bus lets every caller through; the bus policy
// (dbus/org.buildyard.Latent1.conf) decides who may change things, and the
// methods that change things check the caller again (bus::require_admin).
constexpr uint64_t U = SD_BUS_VTABLE_UNPRIVILEGED;
constexpr uint64_t EMITS = SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE;

const sd_bus_vtable latent_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD_WITH_ARGS("Start",
                            SD_BUS_ARGS("s", worker, "s", start, "s", master_address, "s", token, "s",
                                        master_fingerprint, "t", lease_usec),
                            SD_BUS_RESULT("s", instance), method_start, U),
    SD_BUS_METHOD_WITH_ARGS("Stop", SD_BUS_ARGS("s", worker, "s", start), SD_BUS_NO_RESULT, method_stop, U),
    SD_BUS_METHOD_WITH_ARGS("RenewLease", SD_BUS_ARGS("s", start, "t", lease_usec), SD_BUS_NO_RESULT,
                            method_renew_lease, U),
    SD_BUS_METHOD_WITH_ARGS("StopAll", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_stop_all, U),
    SD_BUS_METHOD_WITH_ARGS("ListInstances", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sssssttt)", instances),
                            method_list_instances, U),
    SD_BUS_METHOD_WITH_ARGS("Reap", SD_BUS_NO_ARGS, SD_BUS_RESULT("u", reaped), method_reap, U),
    SD_BUS_METHOD_WITH_ARGS("Reload", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reload, U),
    SD_BUS_SIGNAL_WITH_ARGS("InstanceGone", SD_BUS_ARGS("s", worker, "s", start, "s", reason, "s", log_tail), 0),
    SD_BUS_PROPERTY("Version", "s", prop_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("MasterName", "s", prop_master_name, 0, EMITS),
    SD_BUS_PROPERTY("Instances", "u", prop_instances, 0, EMITS),
    SD_BUS_PROPERTY("ReapedLeaks", "t", prop_reaped_leaks, 0, EMITS),
    SD_BUS_PROPERTY("LastReapedAt", "t", prop_last_reaped_at, 0, EMITS),
    SD_BUS_VTABLE_END,
};

}  // namespace

int register_latent_object(LatentManager& m, sd_bus* bus, SlotPtr& slot) {
    sd_bus_slot* s = nullptr;
    int r = sd_bus_add_object_vtable(bus, &s, bus::latent_path, bus::latent_iface, latent_vtable, &m);
    if (r < 0) return r;
    slot.reset(s);
    return 0;
}

int emit_instance_gone(sd_bus* bus, const std::string& worker, const std::string& start, const std::string& reason,
                       const std::string& log_tail) {
    return sd_bus_emit_signal(bus, bus::latent_path, bus::latent_iface, "InstanceGone", "ssss", worker.c_str(),
                              start.c_str(), text::to_utf8(reason).c_str(), text::to_utf8(log_tail).c_str());
}

}  // namespace by::latent
