// No rerun beside an orphan: when a worker is lost while it runs builds,
// their processes may live on (a worker killed with kill -9 leaves its
// steps running until something kills them; a remote worker cut off by the
// network may not even know). The builds wait in state "cleanup" until the
// worker attaches again, which it does only after it has killed what its
// previous run left (buildyard-workerd(8)), or until the worker's
// lost_build_grace has passed, whichever comes first. Then they end "retry"
// and are rerun. See buildyard-masterd(8) for the trade-off.
#include <cstring>

#include "common/log.hpp"
#include "master/worker_lifecycle.hpp"

namespace by::master {

void WorkerLifecycle::hold_for_cleanup(Worker& w, const std::string& reason) {
    const uint64_t grace = config::lost_build_grace(w.cfg);
    if (grace == 0 || w.running.empty()) {
        return;  // the caller requeues what is left in w.running
    }
    std::vector<ActiveBuild*> waiting;
    for (uint64_t id : workers_.take_running(w)) {
        ActiveBuild* ab = builds_.active(id);
        if (ab && master::await_cleanup(ab->build) == TransitionError::none) {
            waiting.push_back(ab);
        }
    }
    std::vector<Build> records;
    for (const ActiveBuild* ab : waiting) {
        records.push_back(ab->build);
    }
    if (!records.empty() && !store_->record_cleanups(records)) {  // in one commit
        log::error("cannot record that {} builds of worker {} wait for cleanup: {}", records.size(), w.cfg.name,
                   store_->error());
    }
    for (ActiveBuild* found : waiting) {
        ActiveBuild& ab = *found;
        const uint64_t id = ab.build.id;
        log::write(log::Level::notice,
                   fmt::format("build {} of {} waits until worker {} is back or {} s have passed ({}), then reruns",
                               id, ab.build.builder, w.cfg.name, grace, reason),
                   {{"BUILDYARD_BUILD", std::to_string(id)}, {"BUILDYARD_BUILDER", ab.build.builder},
                    {"BUILDYARD_WORKER", w.cfg.name}});
        changes_.build(ab);
        workers_.add_cleanup(w, id);
    }
    if (w.cleanup.empty() || w.cleanup_timer) {
        return;  // an earlier loss's timer is still running: it covers these too
    }
    sd_event_source* s = nullptr;
    int r = sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, grace * 1'000'000, 100'000, on_cleanup_timer, this);
    if (r >= 0) r = sd_event_source_set_description(s, w.cfg.name.c_str());  // whose timer it is
    if (r < 0) {
        sd_event_source_unref(s);
        log::error("cannot time the cleanup of worker {}'s builds: {}; rerunning them now", w.cfg.name,
                   std::strerror(-r));
        end_cleanup(w, "no timer for lost_build_grace");
        return;
    }
    w.cleanup_timer.reset(s);
}

int WorkerLifecycle::on_cleanup_timer(sd_event_source* s, uint64_t, void* userdata) {
    auto& m = *static_cast<WorkerLifecycle*>(userdata);
    const char* name = nullptr;
    Worker* found = sd_event_source_get_description(s, &name) >= 0 ? m.workers_.find(name) : nullptr;
    if (!found) {
        return 0;
    }
    Worker& w = *found;
    m.end_cleanup(w, fmt::format("worker {} did not come back within lost_build_grace ({} s)", w.cfg.name,
                                 config::lost_build_grace(w.cfg)));
    m.build_lifecycle_.request_dispatch();
    return 0;
}

void WorkerLifecycle::end_cleanup(Worker& w, const std::string& why) {
    w.cleanup_timer.reset();
    std::vector<std::pair<uint64_t, Ending>> endings;  // in one commit
    for (uint64_t id : workers_.take_cleanup(w)) {
        ActiveBuild* ab = builds_.active(id);
        if (!ab || ab->build.state != BuildState::cleanup) {
            continue;
        }
        endings.emplace_back(id, ab->build.cancel_requested ? Ending{Result::cancelled, ab->build.exit_status, 0, {}}
                                                            : Ending{Result::retry, -1, 0, why});
    }
    build_lifecycle_.end_builds(endings);
    changes_.worker(w);
}

}  // namespace by::master
