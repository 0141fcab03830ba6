// A build's life in a cluster, where several masters share one PostgreSQL
// store: a pending build that another master queued is pulled into this
// master's queue once a worker of its builder has room here (the store
// announces each new pending build, pg_listener.hpp); a build that this
// master no longer holds (it was fenced, or the build was taken over) is
// let go without a write; the builds of a master declared dead are rerun
// here. Claims stay race-free in the store (Store::claim_available).
#include "common/log.hpp"
#include "master/build_lifecycle.hpp"
#include "master/build_logs.hpp"

namespace by::master {

void BuildLifecycle::foreign_pending(const PendingNotice& notice) {
    if (notice.master == config_.master.name || !find_builder(notice.builder)) {
        announced_.reset();
        return;  // queued here, or not a builder of this master
    }
    if (!notice.build) {
        const bool twin = announced_ == std::pair(notice.master, notice.builder);
        announced_.reset();
        if (twin) {
            return;  // the announcement just heard, with its row, was this build's
        }
    } else {
        announced_ = std::pair(notice.master, notice.builder);
    }
    if (notice.build && !foreign_.count(notice.builder) && !builds_.active(notice.build->id)) {
        sync_dispatcher();
        const Dispatcher& d = builds_.dispatcher();
        if (d.ready(notice.builder) > d.pending(notice.builder)) {
            Build b = *notice.build;
            log_build(log::Level::debug, b,
                      fmt::format("build {} of {} queued by another master: pulled as announced", b.id, b.builder));
            builds_.add_pending(std::move(b)).pulled = true;
            request_dispatch();
            return;
        }
    }
    foreign_.insert(notice.builder);
    request_dispatch();
}

void BuildLifecycle::foreign_taken(const std::string& payload) {
    size_t at = 0;
    while (at < payload.size()) {
        size_t end = payload.find(',', at);
        end = end == std::string::npos ? payload.size() : end;
        const uint64_t id = std::strtoull(payload.substr(at, end - at).c_str(), nullptr, 10);
        if (ActiveBuild* ab = builds_.active(id); ab && ab->build.state == BuildState::pending) {
            let_go(*ab, "another master started it");
        }
        at = end + 1;
    }
}

Status BuildLifecycle::cancel_elsewhere(const Build& found) {
    Build b = found;
    const std::string id = std::to_string(b.id);
    if (b.state == BuildState::pending) {
        if (cancel_pending(b, bus::now_realtime_usec()) != TransitionError::none || !store_->record_ended(b)) {
            return Status::fail(bus::error::Internal, "cannot record the cancellation of build " + id + ": " +
                                                          store_->error());
        }
        store_->announce_taken({b.id});  // the masters that queue it drop it
        log_build(log::Level::notice, b, fmt::format("pending build {} of {} cancelled", id, b.builder));
        return Status::ok();
    }
    if (!store_->request_cancel(b.id)) {
        return Status::fail(bus::error::Internal, "cannot ask the master that runs build " + id + " to cancel it: " +
                                                      store_->error());
    }
    log_build(log::Level::notice, b, fmt::format("asked the master that runs build {} of {} to cancel it", id,
                                                 b.builder));
    return Status::ok();
}

void BuildLifecycle::foreign_cancel(const std::string& payload) {
    const uint64_t id = std::strtoull(payload.c_str(), nullptr, 10);
    if (ActiveBuild* ab = builds_.active(id); ab && ab->build.state != BuildState::pending) {
        const Build b = ab->build;
        if (const Status s = cancel(id); !s) {
            log_build(log::Level::warning, b,
                      fmt::format("another master asked to cancel build {}, which cannot be: {}", id, s.message));
        }
    }
}

void BuildLifecycle::all_foreign() {
    for (const auto& [name, b] : config_.builders) {
        foreign_.insert(name);
    }
    request_dispatch();
}

void BuildLifecycle::store_recovered() {
    if (store_->members()) {
        // Not now: the caller may be between a claim's commit and the
        // start of the builds it claimed. all_foreign() dispatches.
        release_due_ = true;
        all_foreign();
    }
}

void BuildLifecycle::cluster_tick() {
    release_unheld();
    if (trouble_.take_unanswered()) {
        all_foreign();  // a pending build whose commit the master never saw
    }
}

void BuildLifecycle::release_unheld() {
    std::vector<uint64_t> held;
    for (const auto& [id, ab] : builds_.all_active()) {
        if (ab->build.state != BuildState::pending) {
            held.push_back(id);
        }
    }
    const auto released = store_->release_unheld(held);
    if (!released) {
        if (!release_failing_) {
            log::info("{}; trying again with the next dispatch", store_->error());
            release_failing_ = true;
        }
        release_due_ = true;
        return;
    }
    release_failing_ = false;
    release_due_ = false;
    for (const Build& b : *released) {
        log_build(log::Level::warning, b,
                  fmt::format("build {} of {} was recorded started by this master in a commit whose answer never "
                              "came, and nothing runs it; it is pending again",
                              b.id, b.builder));
    }
    if (!released->empty()) {
        all_foreign();  // pulled here like another master's (those held pending here already stay)
    }
}

void BuildLifecycle::pull_foreign() {
    Dispatcher& d = builds_.dispatcher();
    for (auto it = foreign_.begin(); it != foreign_.end();) {
        const size_t ready = d.ready(*it);
        const size_t queued = d.pending(*it);
        if (ready <= queued) {
            ++it;  // what is queued here goes first; pulled once there is room
            continue;
        }
        const size_t wanted = ready - queued;
        auto got = store_->load_pending(*it, d.queued(*it), wanted);
        if (!got) {
            if (!pull_failing_) {
                log::warning("cannot look for builds of {} that other masters queued: {}; trying again with the "
                             "next dispatch",
                             *it, store_->error());
                pull_failing_ = true;
            }
            ++it;
            continue;
        }
        pull_failing_ = false;
        for (Build& b : *got) {
            log_build(log::Level::debug, b, fmt::format("build {} of {} queued by another master: pulled", b.id, b.builder));
            builds_.add_pending(std::move(b)).pulled = true;
        }
        it = got->size() < wanted ? foreign_.erase(it) : std::next(it);
    }
}

void BuildLifecycle::let_go(ActiveBuild& ab, const std::string& why) {
    const uint64_t id = ab.build.id;
    let_go_id_ = id;
    if (ab.build.state == BuildState::pending) {
        log_build(log::Level::info, ab.build, fmt::format("build {} of {} is not pending here any more: {}", id,
                                                          ab.build.builder, why));
        const std::string builder = ab.build.builder;
        builds_.drop_pending(id);  // ab is gone from here on
        changes_.counters(builder);
        return;
    }
    const BuildState was = ab.build.state;
    const uint64_t now = bus::now_realtime_usec();
    log_build(log::Level::warning, ab.build,
              fmt::format("build {} of {} on {} is let go without a record: {}; the master that took it over reruns "
                          "it",
                          id, ab.build.builder, ab.build.worker, why));
    // Its processes must not run beside the rerun.
    if (Worker* w = workers_.find(ab.build.worker); w && w->attached && was == BuildState::running) {
        send_cancel(*w, id);  // best effort: its link may be closing
    }
    Build ended = ab.build;
    ended.state = BuildState::finished;
    ended.result = Result::retry;
    ended.finished_at = now;
    ab.ending.reset();
    ended_stored(ab, Ending{.result = Result::retry, .exit_status = -1, .at = now, .why = why, .let_go = true}, was,
                 std::move(ended), std::nullopt);
}

void BuildLifecycle::let_go_all(const std::string& why) {
    std::vector<uint64_t> held;
    for (const auto& [id, ab] : builds_.all_active()) {
        if (ab->build.state != BuildState::pending) {
            held.push_back(id);
        }
    }
    for (uint64_t id : held) {
        if (ActiveBuild* ab = builds_.active(id)) {
            let_go(*ab, why);
        }
    }
    all_foreign();
}

void BuildLifecycle::took_over(const std::string& dead, std::vector<Retry>& taken) {
    for (Retry& t : taken) {
        log::write(log::Level::notice,
                   fmt::format("build {} of {} was running on {} under master '{}', which was declared dead; "
                               "rerunning it as build {}",
                               t.old.id, t.old.builder, t.old.worker, dead, t.next.id),
                   {{"BUILDYARD_BUILD", std::to_string(t.old.id)}, {"BUILDYARD_BUILDER", t.old.builder},
                    {"BUILDYARD_WORKER", t.old.worker}});
        metrics_.build_finished(t.old);
        const std::string builder = t.next.builder;
        builds_.add_pending(std::move(t.next));
        changes_.counters(builder);
    }
    request_dispatch();
}

}  // namespace by::master
