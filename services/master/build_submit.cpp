// BuildLifecycle: clients' submissions and workers' reported ends. Each
// SubmitBuild (BuildDone) waits, unanswered, for the others read in the
// same loop iteration; then one commit records them all (on PostgreSQL a
// commit waits for the disk, so one per build would bound the rate at the
// disk's flushes), and each gets its answer. A submission that a worker
// can take at once is recorded started in that commit, and so are the
// next builds of the workers whose ends it records.
#include "master/build_lifecycle.hpp"

#include <fmt/format.h>

namespace by::master {

Status BuildLifecycle::submit(const std::string& builder, const std::map<std::string, std::string>& properties,
                              Submitted done) {
    if (!find_builder(builder)) {
        return Status::fail(bus::error::NoSuchBuilder, no_such_builder(config_, builder));
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
    submissions_.push_back({std::move(b), std::move(done)});
    commit_later();
    return Status::ok();
}

void BuildLifecycle::commit_later() {
    // Bounded: a flood of calls, or a loop that always has another event
    // at hand, never keeps the answers waiting long.
    if (!submit_source_ || !submit_timer_ || submissions_.size() >= submit_batch_max ||
        reported_.size() >= submit_batch_max) {
        record_waiting();
        return;
    }
    sd_event_source_set_enabled(submit_source_.get(), SD_EVENT_ONESHOT);
    int enabled = SD_EVENT_OFF;
    if (sd_event_source_get_enabled(submit_timer_.get(), &enabled) >= 0 && enabled == SD_EVENT_OFF) {
        sd_event_source_set_time_relative(submit_timer_.get(), submit_wait_max_usec);
        sd_event_source_set_enabled(submit_timer_.get(), SD_EVENT_ONESHOT);
    }
}

int BuildLifecycle::on_submit_deferred(sd_event_source*, void* userdata) {
    static_cast<BuildLifecycle*>(userdata)->record_waiting();
    return 0;
}

int BuildLifecycle::on_submit_timer(sd_event_source*, uint64_t, void* userdata) {
    static_cast<BuildLifecycle*>(userdata)->record_waiting();
    return 0;
}

void BuildLifecycle::record_waiting() {
    for (sd_event_source* s : {submit_source_.get(), submit_timer_.get()}) {
        if (s) {
            sd_event_source_set_enabled(s, SD_EVENT_OFF);
        }
    }
    record_reported_ends();
    record_submissions();
}

void BuildLifecycle::record_reported_ends() {
    auto batch = std::move(reported_);
    reported_.clear();
    std::vector<std::pair<uint64_t, Ending>> endings;
    std::vector<ReportedEnd*> ending;
    for (ReportedEnd& r : batch) {
        // Ended otherwise since it was reported (cancelled, its worker lost).
        ActiveBuild* ab = builds_.active(r.id);
        if (!ab || ab->ending || ab->build.state != BuildState::running) {
            r.done(Status::fail(bus::error::AlreadyFinished, "build " + std::to_string(r.id) + " has ended already"));
            continue;
        }
        endings.emplace_back(r.id, r.ending);
        ending.push_back(&r);
    }
    if (endings.empty()) {
        return;
    }
    if (!end_builds(endings, true)) {
        const std::string cause = store_->error();
        for (ReportedEnd* r : ending) {
            r->done(Status::fail(bus::error::Internal,
                                 fmt::format("cannot record the end of build {}: {}; the master keeps the result and "
                                             "records it when the state database takes writes again",
                                             r->id, cause)));
        }
        return;
    }
    dispatch_now();  // the workers' next builds, in this iteration
    for (ReportedEnd* r : ending) {
        r->done(Status::ok());
    }
}

std::vector<std::optional<Build>> BuildLifecycle::direct_starts(const std::vector<Build>& builds,
                                                                std::vector<std::string>& planned) {
    std::vector<std::optional<Build>> starts(builds.size());
    if (builds_.starts_in_flight() >= max_starts_in_flight) {
        return starts;
    }
    sync_dispatcher();
    // The dispatcher plans them behind what is queued, under ids no build
    // has (ids are the store's, and it has not given these theirs yet).
    Dispatcher& d = builds_.dispatcher();
    constexpr uint64_t unnumbered = uint64_t{1} << 63;
    for (size_t i = 0; i < builds.size(); ++i) {
        d.enqueue(builds[i].builder, unnumbered + i, unnumbered + i);
    }
    const auto plan = d.plan(max_starts_in_flight - builds_.starts_in_flight());
    for (size_t i = 0; i < builds.size(); ++i) {
        d.remove(builds[i].builder, unnumbered + i, unnumbered + i);  // those not planned
    }
    const uint64_t now = bus::now_realtime_usec();
    for (const Assignment& a : plan) {
        planned.push_back(a.worker);
        if (a.build < unnumbered) {
            // One that waited here: it goes with the dispatch that follows
            // the submissions' commit, in this same turn of the loop.
            if (const ActiveBuild* ab = builds_.active(a.build)) {
                d.enqueue(ab->build.builder, a.build, queue_order(ab->build));
            }
            continue;
        }
        const size_t i = a.build - unnumbered;
        const Worker* w = workers_.find(a.worker);
        // Another master's builds of that builder may wait before it: the
        // dispatch pulls them first.
        if (!w || i >= builds.size() || foreign_.count(builds[i].builder)) {
            continue;
        }
        Build started = builds[i];
        master::start_build(started, w->cfg.name, w->cfg.properties, now, w->cfg.default_properties);
        starts[i] = std::move(started);
    }
    return starts;
}

void BuildLifecycle::record_submissions() {
    auto batch = std::move(submissions_);
    submissions_.clear();
    // A reload since may have removed a builder.
    std::vector<Submission> gone;
    std::erase_if(batch, [&](Submission& s) {
        if (find_builder(s.build.builder)) {
            return false;
        }
        gone.push_back(std::move(s));
        return true;
    });
    for (Submission& s : gone) {
        s.done(Status::fail(bus::error::NoSuchBuilder, no_such_builder(config_, s.build.builder)), 0);
    }
    if (batch.empty()) {
        return;
    }
    std::vector<Build> builds;
    builds.reserve(batch.size());
    for (const Submission& s : batch) {
        builds.push_back(s.build);
    }
    // Workers with room now take the first ones, recorded started in the
    // submissions' own commit: one flush before the build runs, not two.
    std::vector<std::string> planned;
    auto starts = direct_starts(builds, planned);
    const auto started = store_->record_started_submissions(builds, starts);
    // The planned workers' slots are taken again from the workers, started or not.
    const auto resync = [&] {
        for (const std::string& name : planned) {
            sync_worker(name);
        }
    };
    if (!started) {
        resync();
        // No id was committed, so none is handed out.
        trouble_.failed(builds.size() == 1 ? "cannot record a build of " + builds.front().builder
                                           : "cannot record " + std::to_string(builds.size()) + " builds");
        // Its answer lost, the commit may have been made: the build then
        // runs all the same (BuildLifecycle::store_recovered), and the
        // client is told so it does not submit it twice blindly.
        const Status failed = Status::fail(
            bus::error::Internal,
            "cannot record the build: " + store_->error() +
                (store_->unanswered() ? "; the database may have recorded it all the same, and then it runs: look "
                                        "for it before submitting it again"
                                      : ""));
        for (Submission& s : batch) {
            s.done(failed, 0);
        }
        if (store_->lost_hold()) {
            fenced_();
        }
        return;
    }
    trouble_.ok();
    std::vector<uint64_t> ids;
    ids.reserve(builds.size());
    bool fenced = false;
    for (size_t i = 0; i < builds.size(); ++i) {
        Build& b = builds[i];
        ids.push_back(b.id);
        b.request_id = b.id;
        const std::string builder = b.builder;
        Worker* w = starts[i] ? workers_.find(starts[i]->worker) : nullptr;
        if ((*started)[i] && w) {
            Build s = std::move(*starts[i]);
            s.request_id = s.id;
            begin_build(builds_.add_starting(std::move(b)), std::move(s), *w);
            if (const WorkerSlot* slot = builds_.dispatcher().slot(w->cfg.name)) {
                w->last_assigned = slot->last_assigned;
            }
        } else {
            fenced = fenced || starts[i].has_value();
            builds_.add_pending(std::move(b));
        }
        changes_.counters(builder);
    }
    resync();
    if (fenced && store_->lost_hold()) {
        fenced_();  // this master was fenced: it finds out now
    }
    dispatch();
    for (size_t i = 0; i < batch.size(); ++i) {
        batch[i].done(Status::ok(), ids[i]);
    }
}

}  // namespace by::master
