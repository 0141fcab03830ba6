// The per-object interfaces: Worker1, Builder1 and Build1. Each is a fallback
// vtable whose find callback resolves the object path, so builds in the
// history need no bus slot of their own.
#include <array>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

#include "common/bus.hpp"
#include "master/bus_reply.hpp"

namespace by::master {

namespace {

#define PROPERTY_GETTER(fn) \
    int fn(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata, sd_bus_error*)

// --- Worker1 -------------------------------------------------------------

struct WorkerRef {
    Master* master;
    Worker* worker;
};
thread_local WorkerRef current_worker;

const WorkerRef& W(void* p) { return *static_cast<const WorkerRef*>(p); }

// The getter of worker_properties[I] (shown.hpp): every Worker1 property
// reads the same values that change notification compares.
template <size_t I>
PROPERTY_GETTER(w_property) {
    const WorkerRef& ref = W(userdata);
    return worker_properties[I].append(reply, ref.master->registry().current(*ref.worker));
}

int w_pause(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    int r = bus::require_admin(m, e, "pausing a worker");
    if (r < 0) return r;
    const char* reason = nullptr;
    if ((r = sd_bus_message_read(m, "s", &reason)) < 0) return r;
    if (auto bad = limits::check("the reason", reason, limits::reason)) return too_long(*bad, e);
    const WorkerRef ref = W(userdata);
    return reply_ok(m, ref.master->workers().pause(*ref.worker, reason), e, "");
}

int w_unpause(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    if (int r = bus::require_admin(m, e, "unpausing a worker"); r < 0) return r;
    const WorkerRef ref = W(userdata);
    return reply_ok(m, ref.master->workers().unpause(*ref.worker), e, "");
}

int w_shutdown(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    int r = bus::require_admin(m, e, "shutting down a worker");
    if (r < 0) return r;
    int graceful = 0;
    if ((r = sd_bus_message_read(m, "b", &graceful)) < 0) return r;
    const WorkerRef ref = W(userdata);
    return reply_ok(m, ref.master->workers().shutdown(*ref.worker, graceful != 0), e, "");
}

int find_worker(sd_bus*, const char* path, const char*, void* userdata, void** found, sd_bus_error*) {
    auto name = bus::path_decode(path, bus::worker_prefix);
    if (!name) return 0;
    auto* m = static_cast<Master*>(userdata);
    Worker* w = m->find_worker(*name);
    if (!w) return 0;
    // Valid for this one dispatch: the loop is single-threaded.
    current_worker = WorkerRef{m, w};
    *found = &current_worker;
    return 1;
}

// Returns a NULL-terminated strv owned by the caller (sd-bus frees it).
char** to_strv(const std::vector<std::string>& v) {
    auto** out = static_cast<char**>(std::calloc(v.size() + 1, sizeof(char*)));
    if (!out) return nullptr;
    for (size_t i = 0; i < v.size(); ++i) {
        out[i] = strdup(v[i].c_str());
    }
    return out;
}

int enumerate_workers(sd_bus*, const char*, void* userdata, char*** nodes, sd_bus_error*) {
    std::vector<std::string> paths;
    for (const auto& [name, w] : static_cast<Master*>(userdata)->registry().all()) {
        paths.push_back(w->path);
    }
    *nodes = to_strv(paths);
    return *nodes ? 0 : -ENOMEM;
}

constexpr uint64_t U = SD_BUS_VTABLE_UNPRIVILEGED;
constexpr uint64_t CHANGE = SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE;

template <size_t... I>
constexpr std::array<sd_bus_vtable, 5 + sizeof...(I)> make_worker_vtable(std::index_sequence<I...>) {
    return {{
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Pause", SD_BUS_ARGS("s", reason), SD_BUS_NO_RESULT, w_pause, U),
        SD_BUS_METHOD_WITH_ARGS("Unpause", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, w_unpause, U),
        SD_BUS_METHOD_WITH_ARGS("Shutdown", SD_BUS_ARGS("b", graceful), SD_BUS_NO_RESULT, w_shutdown, U),
        SD_BUS_PROPERTY(worker_properties[I].name, worker_properties[I].signature, w_property<I>, 0,
                        worker_properties[I].constant ? uint64_t{SD_BUS_VTABLE_PROPERTY_CONST} : CHANGE)...,
        SD_BUS_VTABLE_END,
    }};
}

const auto worker_vtable = make_worker_vtable(std::make_index_sequence<std::tuple_size_v<decltype(worker_properties)>>());

// --- Builder1 ------------------------------------------------------------

struct BuilderRef {
    Master* master;
    const config::Builder* builder;
};
thread_local BuilderRef current_builder;

const BuilderRef& B(void* p) { return *static_cast<const BuilderRef*>(p); }

PROPERTY_GETTER(b_name) { return sd_bus_message_append(reply, "s", B(userdata).builder->name.c_str()); }
PROPERTY_GETTER(b_workers) { return bus::append_strv(reply, B(userdata).builder->workers); }
PROPERTY_GETTER(b_steps) { return bus::append_strv(reply, B(userdata).builder->steps); }
PROPERTY_GETTER(b_pending) {
    return sd_bus_message_append(reply, "u", B(userdata).master->queue().pending(B(userdata).builder->name));
}
PROPERTY_GETTER(b_running) {
    return sd_bus_message_append(reply, "u", B(userdata).master->queue().running(B(userdata).builder->name));
}

int find_builder(sd_bus*, const char* path, const char*, void* userdata, void** found, sd_bus_error*) {
    auto name = bus::path_decode(path, bus::builder_prefix);
    if (!name) return 0;
    auto* m = static_cast<Master*>(userdata);
    const config::Builder* b = m->find_builder(*name);
    if (!b) return 0;
    // Valid for this one dispatch: the loop is single-threaded.
    current_builder = BuilderRef{m, b};
    *found = &current_builder;
    return 1;
}

int enumerate_builders(sd_bus*, const char*, void* userdata, char*** nodes, sd_bus_error*) {
    std::vector<std::string> paths;
    for (const auto& [name, b] : static_cast<Master*>(userdata)->config().builders) {
        paths.push_back(bus::path_encode(bus::builder_prefix, name));
    }
    *nodes = to_strv(paths);
    return *nodes ? 0 : -ENOMEM;
}

const sd_bus_vtable builder_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Name", "s", b_name, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Workers", "as", b_workers, 0, CHANGE),
    SD_BUS_PROPERTY("Steps", "as", b_steps, 0, CHANGE),
    SD_BUS_PROPERTY("PendingBuilds", "u", b_pending, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
    SD_BUS_PROPERTY("RunningBuilds", "u", b_running, 0, SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION),
    SD_BUS_VTABLE_END,
};

// --- Build1 --------------------------------------------------------------

struct BuildRef {
    Master* master;
    const Build* build;
};
thread_local BuildRef current_build;

const Build& D(void* p) { return *static_cast<const BuildRef*>(p)->build; }
Master& master_of(void* p) { return *static_cast<const BuildRef*>(p)->master; }

PROPERTY_GETTER(d_id) { return sd_bus_message_append(reply, "t", D(userdata).id); }
PROPERTY_GETTER(d_builder) { return sd_bus_message_append(reply, "s", D(userdata).builder.c_str()); }
PROPERTY_GETTER(d_worker) { return sd_bus_message_append(reply, "s", D(userdata).worker.c_str()); }
PROPERTY_GETTER(d_state) { return sd_bus_message_append(reply, "s", std::string(to_string(D(userdata).state)).c_str()); }
PROPERTY_GETTER(d_result) {
    return sd_bus_message_append(reply, "s", std::string(to_string(D(userdata).result)).c_str());
}
PROPERTY_GETTER(d_exit) { return sd_bus_message_append(reply, "i", static_cast<int32_t>(D(userdata).exit_status)); }
// Secret properties (secret.KEY) are never shown, to anyone.
PROPERTY_GETTER(d_properties) { return bus::append_string_map(reply, public_properties(D(userdata).properties)); }
PROPERTY_GETTER(d_submitted) { return sd_bus_message_append(reply, "t", D(userdata).submitted_at); }
PROPERTY_GETTER(d_started) { return sd_bus_message_append(reply, "t", D(userdata).started_at); }
PROPERTY_GETTER(d_finished) { return sd_bus_message_append(reply, "t", D(userdata).finished_at); }
PROPERTY_GETTER(d_step) { return sd_bus_message_append(reply, "u", static_cast<uint32_t>(D(userdata).current_step)); }
PROPERTY_GETTER(d_request) { return sd_bus_message_append(reply, "t", D(userdata).request_id); }
PROPERTY_GETTER(d_retried_as) { return sd_bus_message_append(reply, "t", D(userdata).retried_as); }
PROPERTY_GETTER(d_cpu) { return sd_bus_message_append(reply, "t", D(userdata).usage.cpu_nsec); }
PROPERTY_GETTER(d_memory_peak) { return sd_bus_message_append(reply, "t", D(userdata).usage.memory_peak); }
PROPERTY_GETTER(d_io_read) { return sd_bus_message_append(reply, "t", D(userdata).usage.io_read_bytes); }
PROPERTY_GETTER(d_io_write) { return sd_bus_message_append(reply, "t", D(userdata).usage.io_write_bytes); }

int d_cancel(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    if (int r = bus::require_admin(m, e, "cancelling a build"); r < 0) return r;
    return reply_ok(m, master_of(userdata).builds().cancel(D(userdata).id), e, "");
}

int d_read_log(sd_bus_message* m, void* userdata, sd_bus_error* e) {
    // Logs may hold what a build printed about its environment.
    int r = bus::require_admin(m, e, "reading build logs");
    if (r < 0) return r;
    uint64_t offset = 0, max = 0;
    if ((r = sd_bus_message_read(m, "tt", &offset, &max)) < 0) return r;
    std::string data;
    Status s = master_of(userdata).builds().read_log(D(userdata).id, offset, max, data);
    if (!s) return fail(s, e);
    sd_bus_message* raw = nullptr;
    if ((r = sd_bus_message_new_method_return(m, &raw)) < 0) return r;
    MessagePtr reply(raw);
    if ((r = sd_bus_message_append_array(raw, 'y', data.data(), data.size())) < 0) return r;
    return sd_bus_send(nullptr, raw, nullptr);
}

int find_build(sd_bus*, const char* path, const char*, void* userdata, void** found, sd_bus_error*) {
    auto text = bus::path_decode(path, bus::build_prefix);
    if (!text) return 0;
    // Only the decimal the master writes: not "+1", " 1" or "01".
    uint64_t id = 0;
    auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), id);
    if (ec != std::errc() || end != text->data() + text->size() || std::to_string(id) != *text) return 0;
    auto* m = static_cast<Master*>(userdata);
    const Build* b = m->builds().find(id);
    if (!b) return 0;
    // Valid for this one dispatch: the loop is single-threaded.
    current_build = BuildRef{m, b};
    *found = &current_build;
    return 1;
}

int enumerate_builds(sd_bus*, const char*, void* userdata, char*** nodes, sd_bus_error*) {
    // Active builds and the most recent finished ones; older builds are
    // still reachable by path (GetBuild), just not listed.
    std::vector<std::string> paths;
    for (uint64_t id : static_cast<Master*>(userdata)->queue().recent_ids(50)) {
        paths.push_back(bus::path_encode(bus::build_prefix, std::to_string(id)));
    }
    *nodes = to_strv(paths);
    return *nodes ? 0 : -ENOMEM;
}

const sd_bus_vtable build_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_METHOD_WITH_ARGS("Cancel", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, d_cancel, U),
    SD_BUS_METHOD_WITH_ARGS("ReadLog", SD_BUS_ARGS("t", offset, "t", max), SD_BUS_RESULT("ay", data), d_read_log, U),
    SD_BUS_PROPERTY("Id", "t", d_id, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Builder", "s", d_builder, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("Worker", "s", d_worker, 0, CHANGE),
    SD_BUS_PROPERTY("State", "s", d_state, 0, CHANGE),
    SD_BUS_PROPERTY("Result", "s", d_result, 0, CHANGE),
    SD_BUS_PROPERTY("ExitStatus", "i", d_exit, 0, CHANGE),
    SD_BUS_PROPERTY("Properties", "a{ss}", d_properties, 0, CHANGE),
    SD_BUS_PROPERTY("SubmittedAt", "t", d_submitted, 0, CHANGE),
    SD_BUS_PROPERTY("StartedAt", "t", d_started, 0, CHANGE),
    SD_BUS_PROPERTY("FinishedAt", "t", d_finished, 0, CHANGE),
    SD_BUS_PROPERTY("CurrentStep", "u", d_step, 0, CHANGE),
    SD_BUS_PROPERTY("RequestId", "t", d_request, 0, SD_BUS_VTABLE_PROPERTY_CONST),
    SD_BUS_PROPERTY("RetriedAs", "t", d_retried_as, 0, CHANGE),
    SD_BUS_PROPERTY("CPUTimeNSec", "t", d_cpu, 0, CHANGE),
    SD_BUS_PROPERTY("MemoryPeak", "t", d_memory_peak, 0, CHANGE),
    SD_BUS_PROPERTY("IOReadBytes", "t", d_io_read, 0, CHANGE),
    SD_BUS_PROPERTY("IOWriteBytes", "t", d_io_write, 0, CHANGE),
    SD_BUS_VTABLE_END,
};

}  // namespace

int register_worker_objects(Master& m, sd_bus* bus, std::vector<SlotPtr>& slots) {
    struct Table {
        const char* prefix;
        const char* iface;
        const sd_bus_vtable* vtable;
        sd_bus_object_find_t find;
        sd_bus_node_enumerator_t enumerate;
    };
    const Table tables[] = {
        {bus::worker_prefix, bus::worker_iface, worker_vtable.data(), find_worker, enumerate_workers},
        {bus::builder_prefix, bus::builder_iface, builder_vtable, find_builder, enumerate_builders},
        {bus::build_prefix, bus::build_iface, build_vtable, find_build, enumerate_builds},
    };
    for (const auto& t : tables) {
        sd_bus_slot* s = nullptr;
        int r = sd_bus_add_fallback_vtable(bus, &s, t.prefix, t.iface, counted_vtable(t.iface, t.vtable), t.find, &m);
        if (r < 0) return r;
        slots.emplace_back(s);
        r = sd_bus_add_node_enumerator(bus, &s, t.prefix, t.enumerate, &m);
        if (r < 0) return r;
        slots.emplace_back(s);
    }
    return 0;
}

}  // namespace by::master
