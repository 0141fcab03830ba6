// Builds: submit, dispatch, and StartBuild with its reply (build_reports.cpp:
// what workers report, and cancel; build_end.cpp: how a build ends).
#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.hpp"
#include "common/text.hpp"
#include "master/master.hpp"
#include "master/notifier.hpp"

namespace by::master {


std::string Master::no_such_builder(const std::string& name) const {
    std::string known;
    for (const auto& [builder, b] : config_.builders) {
        known += (known.empty() ? "" : ", ") + builder;
    }
    return "no builder named '" + name + "'; " +
           (known.empty() ? std::string("no builders are configured") : "the builders are: " + known);
}

Status Master::submit(const std::string& builder, const std::map<std::string, std::string>& properties,
                      uint64_t& id) {
    if (!find_builder(builder)) {
        return Status::fail(bus::error::NoSuchBuilder, no_such_builder(builder));
    }
    for (const auto& [k, v] : properties) {
        if (k.empty()) {
            return Status::fail(bus::error::InvalidArgument, "a build property has an empty name");
        }
        if (k == secret_prefix) {
            return Status::fail(bus::error::InvalidArgument, "a secret build property has an empty name");
        }
    }
    Build b;
    b.builder = builder;
    b.requested = properties;
    b.properties = properties;
    b.submitted_at = bus::now_realtime_usec();
    if (!store_->record_submitted(b)) {
        // No id was committed, so none is handed out.
        store_failed("cannot record a build of " + builder);
        return Status::fail(bus::error::Internal, "cannot record the build: " + store_->error());
    }
    store_ok();
    id = b.id;
    b.request_id = id;
    builds_.add_pending(std::move(b));
    counters_changed(builder);
    dispatch();
    return Status::ok();
}

void Master::dispatch() {
    // Builds held for a latent worker go out once it has attached.
    for (const auto& [name, w] : workers_.all()) {
        if (!w->attached || w->held.empty()) {
            continue;
        }
        auto held = workers_.take_held(*w);
        for (uint64_t id : held) {
            if (ActiveBuild* ab = builds_.active(id); ab && ab->build.state == BuildState::running) {
                send_build(*ab, *w);
            }
        }
    }
    if (builds_.pending() == 0) {
        return;
    }
    std::map<std::string, WorkerSlot> slots;
    auto slot_of = [](const Worker& w) {
        WorkerSlot s;
        s.attached = true;
        s.paused = w.paused;
        s.accepting = w.configured && !w.shutting_down && !w.unreachable;
        s.running = static_cast<unsigned>(w.running.size());
        s.max_builds = w.cfg.max_builds;
        s.last_assigned = w.last_assigned;
        return s;
    };
    for (const auto& [name, w] : workers_.all()) {
        if (!w->attached) {
            continue;
        }
        WorkerSlot s = slot_of(*w);
        if (w->latent) {
            s.accepting = s.accepting && latent_->accepts_builds(*w);
        }
        slots.emplace(name, s);
    }
    std::map<std::string, std::vector<std::string>> builder_workers;
    for (const auto& [name, b] : config_.builders) {
        builder_workers.emplace(name, b.workers);
    }
    // dbus-daemon allows a connection only so many calls awaiting replies
    // (max_replies_per_connection, 128 by default); keep StartBuild calls
    // well below that and dispatch the rest as replies come in.
    constexpr size_t max_starts_in_flight = 64;
    if (builds_.starts_in_flight() >= max_starts_in_flight) {
        return;
    }
    size_t budget = max_starts_in_flight - builds_.starts_in_flight();
    // The plan's starts are claimed in one commit. A claim the store does
    // not take leaves all of them pending, and the rest of the dispatch
    // with them: the store's retry dispatches again.
    bool stalled = false;
    auto carry_out = [&](const std::vector<Assignment>& plan) {
        if (!begin_builds(plan)) {
            stalled = true;
            return;
        }
        for (const Assignment& a : plan) {
            if (Worker* w = find_worker(a.worker)) {
                w->last_assigned = slots[a.worker].last_assigned;
            }
        }
    };
    if (!slots.empty()) {
        auto plan = builds_.dispatcher().plan(builder_workers, slots, budget);
        budget -= plan.size();
        carry_out(plan);
    }
    // Only what no running worker can take starts a latent worker's machine
    // (or waits for one on its way up).
    if (stalled || builds_.pending() == 0 || budget == 0) {
        return;
    }
    bool any_latent = false;
    for (const auto& [name, w] : workers_.all()) {
        if (!w->attached && w->latent && latent_->accepts_builds(*w)) {
            slots.emplace(name, slot_of(*w));
            any_latent = true;
        }
    }
    if (any_latent) {
        carry_out(builds_.dispatcher().plan(builder_workers, slots, budget));
    }
}

namespace {

// Whether a StartBuild error says that the worker will not run the build,
// as opposed to trouble on the way (no reply, a connection closing), after
// which it reruns. A worker refuses with org.buildyard.Error.*; one that
// does not know the call as sent (an older or a foreign peer) answers with
// the bus's own errors, and sending it again would only loop.
bool start_refused(const sd_bus_error* e) {
    if (!e->name) {
        return false;
    }
    if (std::strncmp(e->name, "org.buildyard.Error.", 20) == 0) {
        return true;
    }
    for (const char* name : {SD_BUS_ERROR_UNKNOWN_METHOD, SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_INTERFACE,
                             SD_BUS_ERROR_INVALID_ARGS, SD_BUS_ERROR_INVALID_SIGNATURE, SD_BUS_ERROR_NOT_SUPPORTED,
                             SD_BUS_ERROR_ACCESS_DENIED}) {
        if (std::strcmp(e->name, name) == 0) {
            return true;
        }
    }
    return false;
}

}  // namespace

int Master::on_start_reply(sd_bus_message* reply, void* userdata, sd_bus_error*) {
    auto* m = static_cast<Master*>(userdata);
    const auto id = m->builds_.start_answered(reply);
    if (!id) {
        return 0;
    }
    const sd_bus_error* e = sd_bus_message_get_error(reply);
    if (!e) {
        m->dispatch();  // a StartBuild slot came free
        return 0;
    }
    ActiveBuild* ab = m->builds_.active(*id);
    if (!ab || ab->build.state != BuildState::running || ab->ending) {
        return 0;
    }
    std::string why = fmt::format("worker {} did not take build {}: {}: {}", ab->build.worker, *id,
                                  e->name ? e->name : "?", e->message ? e->message : "");
    append_log(*ab, (why + "\n").data(), why.size() + 1);
    if (start_refused(e)) {
        // Running it again on this worker would not help.
        log_build(log::Level::err, ab->build, why);
        m->end_build(*ab, Ending{Result::exception, -1, 0, {}});
    } else {
        // Transport trouble: the build never ran, so run it again.
        m->end_build(*ab, Ending{Result::retry, -1, 0, why});
    }
    return 0;
}

bool Master::begin_builds(const std::vector<Assignment>& plan) {
    struct Start {
        ActiveBuild& ab;
        Worker& w;
    };
    std::vector<Start> starts;
    std::vector<Build> started;
    starts.reserve(plan.size());
    started.reserve(plan.size());
    const uint64_t now = bus::now_realtime_usec();
    for (const Assignment& a : plan) {
        ActiveBuild* ab = builds_.active(a.build);
        Worker* w = find_worker(a.worker);
        if (!ab || !w) {
            continue;
        }
        starts.push_back({*ab, *w});
        Build& b = started.emplace_back(ab->build);
        master::start_build(b, w->cfg.name, w->cfg.properties, now, w->cfg.default_properties);
    }
    if (started.empty()) {
        return true;
    }
    if (!store_->claim_builds(started)) {
        for (const Start& s : starts) {
            builds_.dispatcher().enqueue(s.ab.build.builder, s.ab.build.id);
        }
        store_failed(started.size() == 1 ? fmt::format("cannot record the start of build {}", started.front().id)
                                         : fmt::format("cannot record the start of build {} and {} more",
                                                       started.front().id, started.size() - 1));
        return false;
    }
    store_ok();
    // Sending one may end it (a link that cannot take the call), which
    // touches no other build of the plan.
    for (size_t i = 0; i < starts.size(); ++i) {
        begin_build(starts[i].ab, std::move(started[i]), starts[i].w);
    }
    return true;
}

void Master::begin_build(ActiveBuild& ab, Build&& started, Worker& w) {
    ab.build = std::move(started);
    const config::Builder* builder = find_builder(ab.build.builder);
    ab.steps = builder ? builder->steps : std::vector<std::string>{};
    ab.limits = builder ? builder->limits : config::BuildLimits{};
    ab.secrets = builder ? builder->secrets : std::map<std::string, std::string>{};
    std::vector<std::string> secret_values;
    for (const auto& [k, v] : ab.build.properties) {
        if (is_secret_property(k)) {
            secret_values.push_back(v);
        }
    }
    for (const auto& [k, v] : ab.secrets) {
        secret_values.push_back(v);
    }
    ab.mask = SecretMask(secret_values);
    if (!open_log(ab, state_directory_)) {
        log::error("cannot open the log of build {}: {}", ab.build.id, std::strerror(errno));
    }
    workers_.add_running(w, ab.build.id);
    builds_.count_running(ab.build.builder, +1);
    metrics_.build_started(ab.build);
    if (!w.attached) {
        hold_build(ab, w);
        return;
    }
    if (latent_) {
        latent_->build_assigned(w);
    }
    send_build(ab, w);
}

void Master::hold_build(ActiveBuild& ab, Worker& w) {
    workers_.add_held(w, ab.build.id);
    log_build(log::Level::info, ab.build,
              fmt::format("build {} of {} waits for latent worker {} to start", ab.build.id, ab.build.builder,
                          w.cfg.name));
    emit_build(ab);
    emit_worker(w);
    counters_changed(ab.build.builder);
    latent_->build_assigned(w);  // may fail at once and rerun the build
}

void Master::send_build(ActiveBuild& ab, Worker& w) {
    MessagePtr msg;
    int r = new_agent_call(w, "StartBuild", msg);
    sd_bus_message* raw = msg.get();
    if (r >= 0) r = sd_bus_message_append(raw, "ts", ab.build.id, ab.build.builder.c_str());
    if (r >= 0) r = bus::append_strv(raw, ab.steps);
    if (r >= 0) r = bus::append_string_map(raw, step_environment(ab.build, ab.secrets));
    if (r >= 0) r = bus::append_string_map(raw, config::limits_to_map(ab.limits));
    uint64_t cookie = 0;
    sd_bus_slot* slot = nullptr;
    if (r >= 0) r = sd_bus_call_async(link_bus(w), &slot, raw, &Master::on_start_reply, this, 0);
    SlotPtr call_slot(slot);
    if (r >= 0) r = sd_bus_message_get_cookie(raw, &cookie);
    if (r < 0) {
        log_build(log::Level::err, ab.build, fmt::format("cannot send build {} to worker {}: {}", ab.build.id,
                                                           w.cfg.name, std::strerror(-r)));
        // Its rerun must not come straight back here, or dispatch would
        // loop on a link whose loss the loop has not read yet.
        workers_.set_unreachable(w);
        end_build(ab, Ending{Result::retry, -1, 0, "cannot send it to the worker"});
        return;
    }
    builds_.start_sent(link_bus(w), cookie, ab.build.id, std::move(call_slot));
    log_build(log::Level::info, ab.build, fmt::format("build {} of {} started on {}", ab.build.id, ab.build.builder, w.cfg.name));
    emit_build(ab);
    emit_worker(w);
    counters_changed(ab.build.builder);
}

void Master::fail_waiting_builds(Worker& w, const std::string& why, const std::string& log_text) {
    auto held = workers_.take_held(w);
    for (uint64_t id : held) {
        ActiveBuild* ab = builds_.active(id);
        if (!ab || ab->build.state != BuildState::running) {
            continue;
        }
        append_log(*ab, log_text.data(), log_text.size());
        end_build(*ab, Ending{Result::retry, -1, 0, "latent worker " + w.cfg.name + ": " + why});
    }
    emit_worker(w);
    request_dispatch();
}

}  // namespace by::master
