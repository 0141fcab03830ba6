// How builds start: the dispatch (now, or deferred to the end of this loop
// iteration), StartBuild with its reply, and the builds held for a latent
// worker while its machine comes up. The claim of a plan's builds is in
// build_claim.cpp.
#include <cerrno>
#include <cstring>

#include <algorithm>

#include "common/log.hpp"
#include "master/agent_call.hpp"
#include "master/build_lifecycle.hpp"
#include "master/build_logs.hpp"

namespace by::master {

void BuildLifecycle::request_dispatch() {
    if (dispatch_source_) {
        sd_event_source_set_enabled(dispatch_source_.get(), SD_EVENT_ONESHOT);
    }
}

int BuildLifecycle::on_dispatch_deferred(sd_event_source* s, void* userdata) {
    auto& self = *static_cast<BuildLifecycle*>(userdata);
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
    // Settling may stop and forget a worker.
    auto names = std::move(self.unsettled_);
    self.unsettled_.clear();
    if (!names.empty()) {
        self.settle_(names);
    }
    self.dispatch();
    return 0;
}

void BuildLifecycle::dispatch_now() {
    // Settling may stop a worker and close its link: that waits for the
    // deferred source, out of the caller's handler.
    if (dispatch_source_ && unsettled_.empty()) {
        sd_event_source_set_enabled(dispatch_source_.get(), SD_EVENT_OFF);
    }
    dispatch();
}

void BuildLifecycle::builders_changed() {
    std::map<std::string, std::vector<std::string>> builder_workers;
    for (const auto& [name, b] : config_.builders) {
        builder_workers.emplace(name, b.workers);
    }
    builds_.dispatcher().set_builders(builder_workers);
}

WorkerSlot BuildLifecycle::slot_of(const Worker& w) const {
    WorkerSlot s;
    s.attached = w.attached;
    s.paused = w.paused;
    s.accepting = w.configured && !w.shutting_down && !w.unreachable;
    s.running = static_cast<unsigned>(w.running.size());
    s.max_builds = w.cfg.max_builds;
    s.last_assigned = w.last_assigned;
    if (w.latent) {
        // Not attached, it is on standby: only what no attached worker can
        // take starts its machine (or waits for one on its way up).
        const bool accepts = latent_->accepts_builds(w);
        if (w.attached) {
            s.accepting = s.accepting && accepts;
        } else {
            s.standby = accepts;
        }
    }
    return s;
}

void BuildLifecycle::sync_worker(const std::string& name) {
    const Worker* w = workers_.find(name);
    if (!w) {
        builds_.dispatcher().forget(name);
        latent_workers_.erase(name);
        return;
    }
    // Re-synced every dispatch while either says latent, so that a type
    // changed by a reload is seen whichever the master applies first.
    if (w->latent || w->cfg.type == config::WorkerType::latent) {
        latent_workers_.insert(name);
    } else {
        latent_workers_.erase(name);
    }
    builds_.dispatcher().update(name, slot_of(*w));
}

void BuildLifecycle::sync_dispatcher() {
    // The dispatcher's index learns what changed since the last dispatch;
    // latent workers' readiness also changes with time and their machine,
    // so theirs (a few) is looked at every time.
    for (const auto& name : workers_.take_dispatch_changes()) {
        sync_worker(name);
    }
    for (const auto& name : std::set<std::string>(latent_workers_)) {
        sync_worker(name);
    }
}

void BuildLifecycle::dispatch() {
    // Called only once what a handler claimed has begun (never between a
    // claim's commit and begin_build): what is not held now is not started.
    if (release_due_) {
        release_unheld();
    }
    save_shared_logs();
    sync_dispatcher();
    // Builds held for a latent worker go out once it has attached.
    for (const auto& name : std::set<std::string>(workers_.holding())) {
        Worker* w = workers_.find(name);
        if (!w || !w->attached || w->held.empty()) {
            continue;
        }
        auto held = workers_.take_held(*w);
        for (uint64_t id : held) {
            if (ActiveBuild* ab = builds_.active(id); ab && ab->build.state == BuildState::running) {
                send_build(*ab, *w);
            }
        }
    }
    if (!foreign_.empty()) {
        pull_foreign();
    }
    if (builds_.pending() == 0) {
        return;
    }
    if (builds_.starts_in_flight() >= max_starts_in_flight) {
        return;
    }
    size_t budget = max_starts_in_flight - builds_.starts_in_flight();
    // The plan's starts are claimed in one commit. A claim the store does
    // not take leaves all of them pending, and the rest of the dispatch
    // with them: the store's retry dispatches again. Either way the
    // planned workers' slots are then taken again from the workers.
    bool stalled = false;
    auto carry_out = [&](const std::vector<Assignment>& plan) {
        stalled = !begin_builds(plan);
        planned_done(plan, {}, !stalled);
    };
    auto plan = builds_.dispatcher().plan(budget);
    budget -= plan.size();
    carry_out(plan);
    // Only what no attached worker can take goes to a latent worker on
    // standby.
    if (stalled || builds_.pending() == 0 || budget == 0 || latent_workers_.empty()) {
        return;
    }
    carry_out(builds_.dispatcher().plan(budget, true));
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

int BuildLifecycle::on_start_reply(sd_bus_message* reply, void* userdata, sd_bus_error*) {
    auto* m = static_cast<BuildLifecycle*>(userdata);
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

void BuildLifecycle::begin_build(ActiveBuild& ab, Build&& started, Worker& w) {
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
    latent_->build_assigned(w);
    send_build(ab, w);
}

void BuildLifecycle::hold_build(ActiveBuild& ab, Worker& w) {
    workers_.add_held(w, ab.build.id);
    log_build(log::Level::info, ab.build,
              fmt::format("build {} of {} waits for latent worker {} to start", ab.build.id, ab.build.builder,
                          w.cfg.name));
    changes_.build(ab);
    changes_.worker(w);
    changes_.counters(ab.build.builder);
    latent_->build_assigned(w);  // may fail at once and rerun the build
}

void BuildLifecycle::send_build(ActiveBuild& ab, Worker& w) {
    MessagePtr msg;
    int r = new_agent_call(bus_, w, "StartBuild", msg);
    sd_bus_message* raw = msg.get();
    if (r >= 0) r = sd_bus_message_append(raw, "ts", ab.build.id, ab.build.builder.c_str());
    if (r >= 0) r = bus::append_strv(raw, ab.steps);
    if (r >= 0) r = bus::append_string_map(raw, step_environment(ab.build, ab.secrets));
    if (r >= 0) r = bus::append_string_map(raw, config::limits_to_map(ab.limits));
    uint64_t cookie = 0;
    sd_bus_slot* slot = nullptr;
    if (r >= 0) r = sd_bus_call_async(link_of(bus_, w), &slot, raw, &BuildLifecycle::on_start_reply, this, 0);
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
    builds_.start_sent(link_of(bus_, w), cookie, ab.build.id, std::move(call_slot));
    log_build(log::Level::info, ab.build, fmt::format("build {} of {} started on {}", ab.build.id, ab.build.builder, w.cfg.name));
    changes_.build(ab);
    changes_.worker(w);
    changes_.counters(ab.build.builder);
}

void BuildLifecycle::fail_held(Worker& w, const std::string& why, const std::string& log_text) {
    auto held = workers_.take_held(w);
    for (uint64_t id : held) {
        ActiveBuild* ab = builds_.active(id);
        if (!ab || ab->build.state != BuildState::running) {
            continue;
        }
        append_log(*ab, log_text.data(), log_text.size());
        end_build(*ab, Ending{Result::retry, -1, 0, "latent worker " + w.cfg.name + ": " + why});
    }
    changes_.worker(w);
    request_dispatch();
}

}  // namespace by::master
