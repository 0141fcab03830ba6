// The agent's builds: starting and cancelling them for Agent1, their ends
// reported to the master, and the output paused while the link to the
// master falls behind. agent.cpp is the daemon around them: start-up,
// reload, the link's states, the ways to stop, and the status line.
#include <cstring>
#include <utility>

#include <fmt/format.h>
#include <malloc.h>

#include "common/bus.hpp"
#include "common/log.hpp"
#include "worker/agent.hpp"

namespace by::worker {

namespace {

// Output goes to the bus faster than the bus may take it. Past this many
// unwritten messages (4 MiB of output at most) the steps' pipes are left
// unread, so a step that floods stdout blocks instead of our memory growing.
constexpr uint64_t output_pause_at = 4 * 1024 * 1024 / BuildRunner::max_chunk;
constexpr uint64_t output_resume_at = output_pause_at / 8;
constexpr uint64_t output_check_usec = 10 * 1000;

}  // namespace

int Agent::start_build(uint64_t id, const std::string& builder, std::vector<std::string> steps,
                       std::map<std::string, std::string> environment, const std::map<std::string, std::string>& limits,
                       sd_bus_error* error) {
    if (steps.empty()) {
        return sd_bus_error_setf(error, bus::error::InvalidArgument, "Build %llu has no steps.",
                                 static_cast<unsigned long long>(id));
    }
    if (stopping_) {
        return sd_bus_error_set(error, bus::error::Busy, "This worker is stopping.");
    }
    if (builds_.count(id)) {
        return sd_bus_error_setf(error, bus::error::Busy, "Build %llu is already running here.",
                                 static_cast<unsigned long long>(id));
    }
    std::string why;
    auto parsed_limits = config::limits_from_map(limits, why);
    if (!parsed_limits) {
        return sd_bus_error_setf(error, bus::error::InvalidArgument, "Build %llu: %s",
                                 static_cast<unsigned long long>(id), why.c_str());
    }
    size_t n_steps = steps.size();
    // How the isolation finds the build's processes without a cgroup; the
    // master sets the same values.
    environment["BUILDYARD_WORKER"] = self_.name;
    environment["BUILDYARD_BUILD_ID"] = std::to_string(id);
    BuildRunner::Spec spec{
        .basedir = self_.basedir,
        .builder = builder,
        .steps = std::move(steps),
        .environment = std::move(environment),
        .kill_timeout = self_.kill_timeout,
        .id = id,
        .limits = *parsed_limits,
        .isolation = isolation_.get(),
    };
    BuildRunner::Callbacks callbacks{
        .output =
            [this, id](std::string_view data) {
                link_->output(id, data);
                throttle_output();
            },
        .step_started = [this, id](unsigned step) { link_->step_started(id, step); },
        .done = [this, id](const std::string& result, int exit_status) { build_done(id, result, exit_status); },
    };
    auto runner = std::make_unique<BuildRunner>(event_, std::move(spec), std::move(callbacks));
    int r = runner->start();
    if (r < 0) {
        return sd_bus_error_setf(error, bus::error::Internal, "Cannot start build %llu: %s",
                                 static_cast<unsigned long long>(id), std::strerror(-r));
    }
    runner->set_output_paused(output_paused_);
    builds_.emplace(id, std::move(runner));
    log::write(log::Level::info,
               fmt::format("build {} of {} started ({} step{})", id, builder, n_steps, n_steps == 1 ? "" : "s"),
               {{"BUILDYARD_WORKER", self_.name}, {"BUILDYARD_BUILD", std::to_string(id)}});
    update_status();
    return 0;
}

int Agent::cancel_build(uint64_t id, sd_bus_error* error) {
    auto it = builds_.find(id);
    if (it == builds_.end()) {
        return sd_bus_error_setf(error, bus::error::NoSuchBuild, "Build %llu is not running here.",
                                 static_cast<unsigned long long>(id));
    }
    log::write(log::Level::info, fmt::format("cancelling build {}", id),
               {{"BUILDYARD_WORKER", self_.name}, {"BUILDYARD_BUILD", std::to_string(id)}});
    it->second->cancel();
    return 0;
}

void Agent::build_done(uint64_t id, const std::string& result, int exit_status) {
    log::write(log::Level::info, fmt::format("build {} ended: {} (exit status {})", id, result, exit_status),
               {{"BUILDYARD_WORKER", self_.name}, {"BUILDYARD_BUILD", std::to_string(id)}});
    // While stopping, the master has written these builds off already.
    if (!stopping_) {
        const auto it = builds_.find(id);
        int r = link_->build_done(id, result, exit_status, it != builds_.end() ? it->second->usage() : BuildUsage{});
        if (r < 0) {
            log::warning("cannot report the end of build {}: {}", id, std::strerror(-r));
        }
    }
    builds_.erase(id);  // destroys the runner that called us; it allows that
    if (builds_.empty()) {
        // A build's output passes through the read buffer and the heap (in
        // bus messages); an idle worker gives that memory back.
        BuildRunner::release_buffer();
        malloc_trim(0);
    }
    update_status();
    if (stopping_ && builds_.empty()) {
        exit(0);
    }
    if (draining_ && builds_.empty() && !link_->attached()) {
        link_->detach("graceful shutdown");
        begin_stopping();
    }
}

void Agent::kill_all_builds() {
    builds_.clear();
    update_status();
}

void Agent::throttle_output() {
    if (output_paused_ || link_->queued_writes() < output_pause_at) {
        return;
    }
    sd_event_source* t = nullptr;
    if (sd_event_add_time_relative(event_, &t, CLOCK_MONOTONIC, output_check_usec, 0, on_throttle, this) < 0) {
        return;  // no timer to resume with: better not pause
    }
    throttle_timer_.reset(t);
    set_output_paused(true);
}

int Agent::on_throttle(sd_event_source* s, uint64_t, void* userdata) {
    auto* self = static_cast<Agent*>(userdata);
    if (self->link_->queued_writes() > output_resume_at) {
        uint64_t now = 0;
        sd_event_now(self->event_, CLOCK_MONOTONIC, &now);
        sd_event_source_set_time(s, now + output_check_usec);
        sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
    }
    self->set_output_paused(false);
    return 0;
}

void Agent::set_output_paused(bool paused) {
    output_paused_ = paused;
    for (auto& [id, runner] : builds_) {
        runner->set_output_paused(paused);
    }
}

}  // namespace by::worker
