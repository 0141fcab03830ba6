// BuildLifecycle: clients' submissions and workers' reported ends, each
// recorded together. Each SubmitBuild (BuildDone) waits, unanswered, for
// the others read in the same loop iteration; then one commit records
// them all (on PostgreSQL a commit
// waits for the disk, so one per build would bound the rate at the disk's
// flushes), and each gets its answer.
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
    if (!end_builds(endings)) {
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
    if (!store_->record_submissions(builds)) {
        // No id was committed, so none is handed out.
        trouble_.failed(builds.size() == 1 ? "cannot record a build of " + builds.front().builder
                                           : "cannot record " + std::to_string(builds.size()) + " builds");
        const Status failed = Status::fail(bus::error::Internal, "cannot record the build: " + store_->error());
        for (Submission& s : batch) {
            s.done(failed, 0);
        }
        return;
    }
    trouble_.ok();
    std::vector<uint64_t> ids;
    ids.reserve(builds.size());
    for (Build& b : builds) {
        ids.push_back(b.id);
        b.request_id = b.id;
        const std::string builder = b.builder;
        builds_.add_pending(std::move(b));
        changes_.counters(builder);
    }
    dispatch();
    for (size_t i = 0; i < batch.size(); ++i) {
        batch[i].done(Status::ok(), ids[i]);
    }
}

}  // namespace by::master
