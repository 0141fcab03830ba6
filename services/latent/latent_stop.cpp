// Stopping instances: Stop, StopAll, the lease and health paths, and the
// end of every instance (finish), which answers whoever waits for it.
#include <cstring>

#include "common/bus.hpp"
#include "common/log.hpp"
#include "latent/latent_manager.hpp"

namespace by::latent {

namespace {

std::string describe_stop(StopCause c, const std::string& reason) {
    switch (c) {
    case StopCause::stop: return "stopped";
    case StopCause::stop_all: return "stopped by StopAll";
    case StopCause::failed_create: return "cleaned up after a failed start";
    case StopCause::lease:
    case StopCause::health: return "gone (" + reason + ")";
    }
    return "stopped";
}

}  // namespace

int LatentManager::stop_instance(sd_bus_message* m, const std::string& worker, const std::string& start,
                                 sd_bus_error* e) {
    Instance* inst = find(start);
    if (!inst || inst->dead) {
        return sd_bus_reply_method_return(m, "");
    }
    if (inst->row.worker != worker) {
        return sd_bus_error_setf(e, bus::error::InvalidArgument, "start %s is of worker %s, not %s", start.c_str(),
                                 inst->row.worker.c_str(), worker.c_str());
    }
    inst->stop_calls.push_back(keep(m));
    if (inst->row.phase == Phase::creating) {
        inst->stop_requested = true;
        inst->cause = StopCause::stop;
        log::write(log::Level::info, fmt::format("worker {} (start {}) is stopped as soon as its creation returns",
                                                 worker, start),
                   {{"BUILDYARD_WORKER", worker}, {"BUILDYARD_START", start}});
    } else if (inst->row.phase == Phase::running) {
        begin_destroy(*inst, StopCause::stop);
    }
    return 1;
}

int LatentManager::stop_all(sd_bus_message* m) {
    StopAllWait wait{keep(m), {}, {}};
    std::vector<std::string> running;
    for (auto& [start, inst] : instances_) {
        if (inst->dead) {
            continue;
        }
        wait.pending.insert(start);
        if (inst->row.phase == Phase::creating) {
            inst->stop_requested = true;
            inst->cause = StopCause::stop_all;
        } else if (inst->row.phase == Phase::running) {
            running.push_back(start);
        }
    }
    log::info("stopping all {} live instances", wait.pending.size());
    if (wait.pending.empty()) {
        return sd_bus_reply_method_return(m, "");
    }
    stop_all_waits_.push_back(std::move(wait));
    for (const auto& start : running) {
        if (Instance* inst = find(start)) {
            begin_destroy(*inst, StopCause::stop_all);
        }
    }
    return 1;
}

void LatentManager::begin_destroy(Instance& inst, StopCause cause, std::string reason, std::string log_tail) {
    inst.row.phase = Phase::stopping;
    inst.cause = cause;
    inst.gone_reason = std::move(reason);
    inst.log_tail = std::move(log_tail);
    if (!store_.set_phase(inst.row.start, Phase::stopping)) {
        log::error("cannot record the stop of start {}: {}", inst.row.start, store_.error());
    }
    const std::string start = inst.row.start;
    const uint64_t grace = shutdown_grace_usec(*inst.worker);
    auto backend = inst.backend;
    auto wcfg = inst.worker;
    auto tag = inst.tag();
    int r = calls_.run<bool>(
        grace + timing_.destroy,
        [backend, wcfg, tag, grace](const Cancelled& c) { return backend->destroy(tag, wcfg.get(), grace, c); },
        [this, start](Outcome<bool> out) {
            if (out.ok()) {
                finish(start, nullptr, {});
            } else {
                finish(start, bus::error::BackendFailed, out.error + "; the reaper retries its removal");
            }
        },
        [this, start] {
            finish(start, bus::error::Timeout,
                   fmt::format("the backend did not stop start {} in time; the reaper removes what is left", start));
        },
        [this, start](Outcome<bool> out) {
            log::notice("the stop of start {} answered after its deadline: {}", start,
                        out.ok() ? "done" : out.error);
            request_reap();
        });
    if (r < 0) {
        finish(start, bus::error::Internal, std::string("cannot run the backend: ") + std::strerror(-r));
        return;
    }
    changed();
}

void LatentManager::finish(const std::string& start, const char* error, const std::string& message) {
    auto it = instances_.find(start);
    if (it == instances_.end()) {
        return;
    }
    std::unique_ptr<Instance> inst = std::move(it->second);
    instances_.erase(it);
    if (!store_.remove(start)) {
        log::error("cannot delete start {}: {}", start, store_.error());
    }
    const std::string& worker = inst->row.worker;
    const bool gone = inst->cause == StopCause::lease || inst->cause == StopCause::health;
    if (error) {
        log::write(log::Level::err, fmt::format("worker {} (start {}): {}", worker, start, message),
                   {{"BUILDYARD_WORKER", worker}, {"BUILDYARD_START", start}});
    } else {
        log::write(log::Level::info,
                   fmt::format("worker {} {}: instance {} (start {}) removed", worker,
                               describe_stop(inst->cause, inst->gone_reason), inst->row.instance, start),
                   {{"BUILDYARD_WORKER", worker}, {"BUILDYARD_START", start},
                    {"MESSAGE_ID", std::string(log::id::instance_stopped)}});
    }
    if (inst->start_call) {
        reply_error(inst->start_call, error ? error : bus::error::NoSuchInstance,
                    error ? message : fmt::format("start {} was stopped while it was being created", start));
    }
    for (const auto& call : inst->stop_calls) {
        if (error) {
            reply_error(call, error, message);
        } else {
            sd_bus_reply_method_return(call.get(), "");
        }
    }
    for (auto w = stop_all_waits_.begin(); w != stop_all_waits_.end();) {
        if (w->pending.erase(start) && error) {
            w->failures.push_back(fmt::format("{} (start {}): {}", worker, start, message));
        }
        if (!w->pending.empty()) {
            ++w;
            continue;
        }
        if (w->failures.empty()) {
            sd_bus_reply_method_return(w->call.get(), "");
        } else {
            std::string all;
            for (const auto& f : w->failures) {
                all += (all.empty() ? "" : "; ") + f;
            }
            reply_error(w->call, bus::error::BackendFailed, all);
        }
        w = stop_all_waits_.erase(w);
    }
    if (gone) {
        emit_instance_gone(bus_, worker, start, inst->gone_reason, inst->log_tail);
    }
    changed();
}

Verdict LatentManager::renew_lease(const std::string& start, uint64_t lease_usec) {
    Instance* inst = find(start);
    if (!inst || inst->dead) {
        return {bus::error::NoSuchInstance, fmt::format("start {} is not live", start)};
    }
    if (lease_usec == 0) {
        return {bus::error::InvalidArgument, "the lease is 0"};
    }
    const uint64_t expires = lease_deadline(bus::now_realtime_usec(), lease_usec);
    inst->lease_usec = lease_usec;
    if (inst->row.phase == Phase::creating) {
        // The lease runs from the moment the instance runs.
        return {};
    }
    inst->row.lease_expires = expires;
    if (!store_.set_lease(start, expires)) {
        log::error("cannot record the lease of start {}: {}", start, store_.error());
    }
    return {};
}

}  // namespace by::latent
