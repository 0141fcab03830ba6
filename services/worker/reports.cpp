#include "worker/reports.hpp"

#include <fmt/format.h>

#include "common/bus.hpp"
#include "common/log.hpp"
#include "common/raii.hpp"

namespace by::worker::reports {

namespace {

template <class Append>
int send_no_reply(sd_bus* bus, const char* destination, const char* member, Append append) {
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(bus, &raw, destination, by::bus::master_path, by::bus::link_iface, member);
    MessagePtr m(raw);
    if (r < 0) return r;
    if ((r = append(raw)) < 0) return r;
    if ((r = sd_bus_message_set_expect_reply(raw, 0)) < 0) return r;
    return sd_bus_send(bus, raw, nullptr);
}

int on_build_done_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    const sd_bus_error* e = sd_bus_message_get_error(m);
    // A reply synthesized because the connection closed is not news: the
    // master reruns the build anyway.
    if (e && sd_bus_is_open(sd_bus_message_get_bus(m)) > 0) {
        uint64_t id = *static_cast<uint64_t*>(userdata);
        log::write(log::Level::warning,
                   fmt::format("the master did not take the result of build {}: {}", id,
                               e->message && *e->message ? e->message : (e->name ? e->name : "unknown error")),
                   {{"BUILDYARD_BUILD", std::to_string(id)}});
    }
    return 0;
}

int on_shutdown_reply(sd_bus_message* m, void*, sd_bus_error*) {
    const sd_bus_error* e = sd_bus_message_get_error(m);
    if (e && sd_bus_is_open(sd_bus_message_get_bus(m)) > 0) {
        log::warning("the master did not take the graceful shutdown: {}",
                     e->message && *e->message ? e->message : (e->name ? e->name : "unknown error"));
    }
    return 0;
}

}  // namespace

int shutdown_gracefully(sd_bus* bus, const char* destination) {
    sd_bus_slot* raw = nullptr;
    int r = sd_bus_call_method_async(bus, &raw, destination, by::bus::master_path, by::bus::link_iface,
                                     "ShutdownGracefully", on_shutdown_reply, nullptr, "");
    if (r < 0) {
        return r;
    }
    // The bus keeps the call until its reply.
    SlotPtr slot(raw);
    sd_bus_slot_set_floating(raw, 1);
    return 0;
}

int step_started(sd_bus* bus, const char* destination, uint64_t build, unsigned step) {
    return send_no_reply(bus, destination, "StepStarted", [&](sd_bus_message* m) {
        return sd_bus_message_append(m, "tu", build, static_cast<uint32_t>(step));
    });
}

int output(sd_bus* bus, const char* destination, uint64_t build, std::string_view data) {
    return send_no_reply(bus, destination, "Output", [&](sd_bus_message* m) {
        int r = sd_bus_message_append(m, "t", build);
        return r < 0 ? r : sd_bus_message_append_array(m, 'y', data.data(), data.size());
    });
}

int build_done(sd_bus* bus, const char* destination, uint64_t build, const std::string& result, int exit_status,
               const BuildUsage& usage) {
    sd_bus_message* m = nullptr;
    int r = sd_bus_message_new_method_call(bus, &m, destination, by::bus::master_path, by::bus::link_iface,
                                           "BuildDone");
    MessagePtr call(m);
    if (r >= 0) r = sd_bus_message_append(m, "tsi", build, result.c_str(), static_cast<int32_t>(exit_status));
    if (r >= 0) r = sd_bus_message_open_container(m, 'a', "{st}");
    for (const auto& [key, value] : usage_to_map(usage)) {
        if (r >= 0) r = sd_bus_message_append(m, "{st}", key.c_str(), value);
    }
    if (r >= 0) r = sd_bus_message_close_container(m);
    if (r < 0) {
        return r;
    }
    auto* id = new uint64_t(build);
    sd_bus_slot* raw = nullptr;
    r = sd_bus_call_async(bus, &raw, m, on_build_done_reply, id, 0);
    if (r < 0) {
        delete id;
        return r;
    }
    // The bus keeps the call until its reply; the slot frees the id.
    SlotPtr slot(raw);
    sd_bus_slot_set_destroy_callback(raw, [](void* p) { delete static_cast<uint64_t*>(p); });
    sd_bus_slot_set_floating(raw, 1);
    return 0;
}

}  // namespace by::worker::reports
