// What a running build's worker reports: StepStarted, Output, BuildDone.
#include <cstring>

#include "common/log.hpp"
#include "common/text.hpp"
#include "master/build_lifecycle.hpp"

#include <algorithm>
#include "master/build_logs.hpp"

namespace by::master {

ActiveBuild* BuildLifecycle::running_on(const std::string& sender, uint64_t id, Worker** w) {
    *w = workers_.by_sender(sender);
    if (!*w) {
        return nullptr;
    }
    ActiveBuild* ab = builds_.active(id);
    if (!ab || ab->build.state != BuildState::running || ab->build.worker != (*w)->cfg.name) {
        return nullptr;
    }
    return ab;
}

Status BuildLifecycle::step_started(const std::string& sender, uint64_t id, unsigned step) {
    Worker* w = nullptr;
    ActiveBuild* ab = running_on(sender, id, &w);
    if (!ab) {
        return Status::fail(w ? bus::error::NoSuchBuild : bus::error::NotAttached, "not a build running on this worker");
    }
    ab->build.current_step = step;
    if (step >= 1 && step <= ab->steps.size()) {
        std::string header = fmt::format("--- step {}/{}: {}\n", step, ab->steps.size(), ab->steps[step - 1]);
        append_log(*ab, header.data(), header.size());
    }
    changes_.build(*ab);
    return Status::ok();
}

Status BuildLifecycle::output(const std::string& sender, uint64_t id, const void* data, size_t size) {
    Worker* w = nullptr;
    ActiveBuild* ab = running_on(sender, id, &w);
    if (!ab) {
        return Status::fail(w ? bus::error::NoSuchBuild : bus::error::NotAttached, "not a build running on this worker");
    }
    append_log(*ab, data, size);
    return Status::ok();
}

Status BuildLifecycle::build_done(const std::string& sender, uint64_t id, const std::string& result, int exit_status,
                                  const BuildUsage& usage, Answered done) {
    Worker* w = nullptr;
    ActiveBuild* ab = running_on(sender, id, &w);
    if (!ab) {
        return Status::fail(w ? bus::error::NoSuchBuild : bus::error::NotAttached, "not a build running on this worker");
    }
    auto r = parse_result(result);
    if (!r || *r == Result::none || *r == Result::retry) {
        log_build(log::Level::warning, ab->build,
                  fmt::format("worker {} reported an unknown result '{}' for build {}", w->cfg.name,
                              text::for_log(result, 64), id));
        r = Result::exception;
    }
    if (ab->ending || std::any_of(reported_.begin(), reported_.end(), [&](const auto& e) { return e.id == id; })) {
        return Status::fail(bus::error::AlreadyFinished, "build " + std::to_string(id) + " has ended already");
    }
    ab->build.usage = usage;
    reported_.push_back({id, Ending{*r, exit_status, bus::now_realtime_usec(), {}}, std::move(done)});
    commit_later();
    return Status::ok();
}

}  // namespace by::master
