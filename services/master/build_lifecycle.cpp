// BuildLifecycle's set-up, and what clients ask of builds: submit, cancel,
// list, find. Dispatch and start: build_start.cpp; workers' reports:
// build_reports.cpp; ends: build_end.cpp; logs: build_logs.cpp.
#include "master/build_lifecycle.hpp"

#include <algorithm>
#include <cstring>

#include "common/log.hpp"
#include "master/agent_call.hpp"
#include "master/build_logs.hpp"

namespace by::master {

std::string no_such_builder(const config::Config& config, const std::string& name) {
    std::string known;
    for (const auto& [builder, b] : config.builders) {
        known += (known.empty() ? "" : ", ") + builder;
    }
    return "no builder named '" + name + "'; " +
           (known.empty() ? std::string("no builders are configured") : "the builders are: " + known);
}

BuildLifecycle::BuildLifecycle(Parts p)
    : bus_(p.bus),
      config_(p.config),
      state_directory_(p.state_directory),
      store_(&p.store),
      builds_(p.queue),
      workers_(p.workers),
      metrics_(p.metrics),
      changes_(p.changes),
      trouble_(p.trouble),
      notifier_(&p.notifier),
      latent_(&p.latent),
      settle_(std::move(p.settle)),
      fenced_(std::move(p.fenced)) {}

int BuildLifecycle::start(sd_event* event) {
    sd_event_source* s = nullptr;
    int r = sd_event_add_defer(event, &s, &BuildLifecycle::on_dispatch_deferred, this);
    if (r < 0) {
        return r;
    }
    dispatch_source_.reset(s);
    if ((r = sd_event_source_set_enabled(s, SD_EVENT_OFF)) < 0) {
        return r;
    }
    // Below every other source (the bus's messages, the workers' links),
    // so that the submissions read together commit together.
    if ((r = sd_event_add_defer(event, &s, &BuildLifecycle::on_submit_deferred, this)) < 0) {
        return r;
    }
    submit_source_.reset(s);
    if ((r = sd_event_source_set_priority(s, SD_EVENT_PRIORITY_IDLE)) < 0 ||
        (r = sd_event_source_set_enabled(s, SD_EVENT_OFF)) < 0) {
        return r;
    }
    // Accuracy 1 us: sd-event's default would wait up to 250 ms longer.
    if ((r = sd_event_add_time_relative(event, &s, CLOCK_MONOTONIC, submit_wait_max_usec, 1,
                                        &BuildLifecycle::on_submit_timer, this)) < 0) {
        return r;
    }
    submit_timer_.reset(s);
    return sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

void BuildLifecycle::recover(std::vector<Build> builds) {
    std::vector<Build> interrupted;
    std::vector<Retry> retries;
    const uint64_t now = bus::now_realtime_usec();
    for (Build& b : builds) {
        if (b.state == BuildState::running || b.state == BuildState::cleanup) {
            Retry r{b, {}};
            r.next = *retry_build(r.old, now);  // a running build always has one
            retries.push_back(std::move(r));
            interrupted.push_back(std::move(b));
        }
    }
    std::erase_if(builds, [](const Build& b) { return b.state != BuildState::pending; });
    if (!retries.empty() && store_->record_retries(retries)) {
        for (Retry& r : retries) {
            log::write(log::Level::notice,
                       fmt::format("build {} of {} was running on {} when the master stopped; rerunning it as build {}",
                                   r.old.id, r.old.builder, r.old.worker, r.next.id),
                       {{"BUILDYARD_BUILD", std::to_string(r.old.id)}, {"BUILDYARD_BUILDER", r.old.builder},
                        {"BUILDYARD_WORKER", r.old.worker}});
            builds.push_back(std::move(r.next));
        }
    } else if (!retries.empty()) {
        // The store takes no writes (a full disk): the builds stay running,
        // as stored, until their requeue is.
        for (Build& b : interrupted) {
            builds_.add_unstored_end(std::move(b), Ending{Result::retry, -1, now, "the master stopped while it ran"});
        }
        trouble_.failed(fmt::format("cannot requeue build {}", retries.front().old.id));
    }
    for (Build& b : builds) {
        builds_.add_pending(std::move(b));
    }
}

int BuildLifecycle::send_cancel(const Worker& w, uint64_t id) {
    MessagePtr call;
    int r = new_agent_call(bus_, w, "CancelBuild", call);
    if (r >= 0) r = sd_bus_message_append(call.get(), "t", id);
    if (r >= 0) r = sd_bus_call_async(link_of(bus_, w), nullptr, call.get(), nullptr, nullptr, 0);
    return r;
}

const config::Builder* BuildLifecycle::find_builder(const std::string& name) const {
    auto it = config_.builders.find(name);
    return it == config_.builders.end() ? nullptr : &it->second;
}

Status BuildLifecycle::cancel(uint64_t id) {
    ActiveBuild* found = builds_.active(id);
    if (!found) {
        const Build* b = find(id);
        if (b && b->state != BuildState::finished) {
            return cancel_elsewhere(*b);  // another master sharing the store holds it
        }
        if (b) {
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
        let_go_id_ = 0;
        if (!end_build(ab, Ending{Result::cancelled, -1, 0, {}})) {
            return Status::fail(bus::error::Internal, "cannot record the cancellation: " + store_->error());
        }
        if (let_go_id_ == id) {
            // Another master sharing the store started it first.
            return Status::fail(bus::error::Internal, "build " + std::to_string(id) +
                                                          " cannot be cancelled here: " + store_->error() +
                                                          "; cancel it on that master");
        }
        return Status::ok();
    }
    if (ab.build.state == BuildState::cleanup) {
        // Its worker was lost; it ends cancelled, not retry, once its
        // processes are known to be gone (worker_cleanup.cpp).
        ab.build.cancel_requested = true;
        log_build(log::Level::notice, ab.build,
                  fmt::format("build {} of {} will end cancelled once its cleanup is done", id, ab.build.builder));
        return Status::ok();
    }
    Worker* w = workers_.find(ab.build.worker);
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
    if (const int r = send_cancel(*w, id); r < 0) {
        return Status::fail(bus::error::Internal, std::string("cannot reach the worker: ") + std::strerror(-r));
    }
    log_build(log::Level::notice, ab.build, fmt::format("cancelling build {} on {}", id, w->cfg.name));
    return Status::ok();
}


const Build* BuildLifecycle::find(uint64_t id) { return builds_.find(id, *store_); }
                                  
                                  std::vector<Build> BuildLifecycle::list(uint64_t before, uint64_t limit) {
    // One reply never holds the whole history: at most list_builds_max.
    return builds_.list(*store_, before, limit == 0 ? list_builds_max : std::min(limit, list_builds_max));
}

}  // namespace by::master
