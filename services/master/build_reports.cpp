// What a running build's worker reports (StepStarted, Output, BuildDone),
// and Cancel, for a build in any state.
#include <cstring>

#include "common/log.hpp"
#include "common/text.hpp"
#include "master/master.hpp"

namespace by::master {

ActiveBuild* Master::running_on(const std::string& sender, uint64_t id, Worker** w) {
    *w = worker_by_sender(sender);
    if (!*w) {
        return nullptr;
    }
    ActiveBuild* ab = builds_.active(id);
    if (!ab || ab->build.state != BuildState::running || ab->build.worker != (*w)->cfg.name) {
        return nullptr;
    }
    return ab;
}

Status Master::step_started(const std::string& sender, uint64_t id, unsigned step) {
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
    emit_build(*ab);
    return Status::ok();
}

Status Master::output(const std::string& sender, uint64_t id, const void* data, size_t size) {
    Worker* w = nullptr;
    ActiveBuild* ab = running_on(sender, id, &w);
    if (!ab) {
        return Status::fail(w ? bus::error::NoSuchBuild : bus::error::NotAttached, "not a build running on this worker");
    }
    append_log(*ab, data, size);
    return Status::ok();
}

Status Master::build_done(const std::string& sender, uint64_t id, const std::string& result, int exit_status,
                          const BuildUsage& usage) {
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
    if (ab->ending) {
        return Status::fail(bus::error::AlreadyFinished, "build " + std::to_string(id) + " has ended already");
    }
    ab->build.usage = usage;
    if (!end_build(*ab, Ending{*r, exit_status, 0, {}})) {
        return Status::fail(bus::error::Internal,
                            fmt::format("cannot record the end of build {}: {}; the master keeps the result and "
                                        "records it when the state directory takes writes again",
                                        id, store_->error()));
    }
    dispatch_now();  // the worker's next build, in this iteration
    return Status::ok();
}

Status Master::cancel(uint64_t id) {
    ActiveBuild* found = builds_.active(id);
    if (!found) {
        if (find_build(id)) {
            return Status::fail(bus::error::AlreadyFinished, "build " + std::to_string(id) + " has already finished");
        }
        return Status::fail(bus::error::NoSuchBuild, "no build " + std::to_string(id));
    }
    ActiveBuild& ab = *found;
    if (ab.ending) {
        return Status::fail(bus::error::AlreadyFinished,
                            "build " + std::to_string(id) + " has ended; its end waits to be recorded");
    }
    if (ab.build.state == BuildState::pending) {
        if (!end_build(ab, Ending{Result::cancelled, -1, 0, {}})) {
            return Status::fail(bus::error::Internal, "cannot record the cancellation: " + store_->error());
        }
        return Status::ok();
    }
    if (ab.build.state == BuildState::cleanup) {
        // Its worker was lost; it ends cancelled, not retry, once its
        // processes are known to be gone (cleanup.cpp).
        ab.build.cancel_requested = true;
        log_build(log::Level::notice, ab.build,
                  fmt::format("build {} of {} will end cancelled once its cleanup is done", id, ab.build.builder));
        return Status::ok();
    }
    Worker* w = find_worker(ab.build.worker);
    if (w && w->held.count(id)) {  // end_build takes it off the worker
        // Waiting for a latent worker's machine: it never ran.
        log_build(log::Level::notice, ab.build,
                  fmt::format("build {} of {} cancelled while latent worker {} was starting", id, ab.build.builder,
                              w->cfg.name));
        if (!end_build(ab, Ending{Result::cancelled, -1, 0, {}})) {
            return Status::fail(bus::error::Internal,
                                "cannot record the cancellation: " + store_->error() + "; it is recorded later");
        }
        return Status::ok();
    }
    if (!w || !w->attached) {
        return Status::fail(bus::error::NotAttached, "the worker of build " + std::to_string(id) + " is not attached");
    }
    ab.build.cancel_requested = true;
    MessagePtr call;
    int r = new_agent_call(*w, "CancelBuild", call);
    if (r >= 0) r = sd_bus_message_append(call.get(), "t", id);
    if (r >= 0) r = sd_bus_call_async(link_bus(*w), nullptr, call.get(), nullptr, nullptr, 0);
    if (r < 0) {
        return Status::fail(bus::error::Internal, std::string("cannot reach the worker: ") + std::strerror(-r));
    }
    log_build(log::Level::notice, ab.build, fmt::format("cancelling build {} on {}", id, w->cfg.name));
    return Status::ok();
}

}  // namespace by::master
