// What an admin (or the worker itself) asks of a worker: pause, unpause,
// and a graceful or immediate shutdown.
#include "common/bus.hpp"
#include "common/log.hpp"
#include "common/text.hpp"
#include "master/worker_lifecycle.hpp"

namespace by::master {

Status WorkerLifecycle::pause(Worker& w, const std::string& reason) {
    const bool was = w.paused;
    const std::string was_reason = w.pause_reason;
    workers_.set_paused(w, true, reason);
    if (!save(w)) {
        workers_.set_paused(w, was, was_reason);
        return Status::fail(bus::error::Internal, "cannot record the pause: " + store_->error());
    }
    log::write(log::Level::notice, fmt::format("worker {} paused: {}", w.cfg.name, reason.empty() ? "-" : text::for_log(reason)),
               {{"BUILDYARD_WORKER", w.cfg.name}});
    changes_.worker(w);
    return Status::ok();
}

Status WorkerLifecycle::unpause(Worker& w) {
    const bool was = w.paused;
    const std::string was_reason = w.pause_reason;
    workers_.set_paused(w, false, {});
    if (!save(w)) {
        workers_.set_paused(w, was, was_reason);
        return Status::fail(bus::error::Internal, "cannot record the unpause: " + store_->error());
    }
    log::write(log::Level::notice, fmt::format("worker {} unpaused", w.cfg.name), {{"BUILDYARD_WORKER", w.cfg.name}});
    changes_.worker(w);
    build_lifecycle_.dispatch();
    return Status::ok();
}

Status WorkerLifecycle::shutdown(Worker& w, bool graceful) {
    if (w.latent) {
        const bool attached = w.attached;
        if (!latent_->shutdown(w, graceful)) {
            return Status::fail(bus::error::NotAttached, "latent worker '" + w.cfg.name + "' has no machine running");
        }
        if (attached && !graceful) {
            stop(w, DetachCause::shutdown, "shutdown requested");  // its builds end retry now
        }
        return Status::ok();
    }
    if (!w.attached) {
        return Status::fail(bus::error::NotAttached, "worker '" + w.cfg.name + "' is not attached");
    }
    if (graceful) {
        workers_.set_shutting_down(w);
        log::write(log::Level::notice,
                   fmt::format("worker {} shuts down once its {} running builds end", w.cfg.name, w.running.size()),
                   {{"BUILDYARD_WORKER", w.cfg.name}});
        changes_.worker(w);
        settle(w);
    } else {
        stop(w, DetachCause::shutdown, "shutdown requested");
    }
    return Status::ok();
}

Status WorkerLifecycle::link_shutdown(const std::string& sender) {
    Worker* w = workers_.by_sender(sender);
    if (!w) {
        return Status::fail(bus::error::NotAttached, "not an attached worker");
    }
    log::write(log::Level::notice, fmt::format("worker {} asks for a graceful shutdown", w->cfg.name),
               {{"BUILDYARD_WORKER", w->cfg.name}});
    return shutdown(*w, true);
}

}  // namespace by::master
