// WorkerLifecycle's set-up, the workers a configuration brings and takes,
// their stored admin state, and the calls the remote link's keepalive makes.
#include "master/worker_lifecycle.hpp"

#include <cerrno>

#include "common/bus.hpp"
#include "master/agent_call.hpp"

namespace by::master {

WorkerLifecycle::WorkerLifecycle(Parts p)
    : event_(p.event),
      bus_(p.bus),
      config_(p.config),
      store_(&p.store),
      workers_(p.workers),
      builds_(p.queue),
      build_lifecycle_(p.builds),
      metrics_(p.metrics),
      changes_(p.changes),
      trouble_(p.trouble),
      latent_(&p.latent) {}

Worker& WorkerLifecycle::add(const config::Worker& cfg) {
    Worker& w = workers_.add(cfg, store_->load_worker(cfg.name));
    if (w.last_connected > w.last_disconnected) {
        // It was attached when the master stopped, and that link is gone:
        // record its end now, or every restart would restart the worker's
        // missing clock.
        workers_.set_last_disconnected(w, bus::now_realtime_usec());
        save(w);
    }
    metrics_.worker_shown(cfg.name, w.shown, bus::now_realtime_usec());
    return w;
}

void WorkerLifecycle::forget(const std::string& name) {
    Worker* w = workers_.find(name);
    if (!w) {
        return;
    }
    latent_->forget(*w);
    metrics_.worker_forgotten(name);
    workers_.forget(name);
}

const std::string* WorkerLifecycle::key(const Worker& w) const {
    if (w.cfg.type == config::WorkerType::latent) {
        return latent_->current_token(w);
    }
    return w.cfg.password.empty() ? nullptr : &w.cfg.password;
}

bool WorkerLifecycle::save(Worker& w) {
    WorkerRecord rec{w.cfg.name, w.paused,     w.pause_reason, w.last_connected, w.last_disconnected,
                     w.info,     w.attached ? config_.master.name : std::string()};
    if (!store_->save_worker(rec)) {
        w.unsaved = true;
        trouble_.failed("cannot save the state of worker " + w.cfg.name);
        return false;
    }
    w.unsaved = false;
    trouble_.ok();
    return true;
}

bool WorkerLifecycle::save_unsaved() {
    for (auto& [name, w] : workers_.all()) {
        if (w->unsaved && !save(*w)) {
            return false;
        }
    }
    return true;
}

int WorkerLifecycle::tell_keepalive(const std::string& name, uint64_t interval, sd_bus_message_handler_t callback,
                                    void* userdata, SlotPtr& slot) {
    const Worker* w = workers_.find(name);
    if (!w || !w->attached) {
        return -ENOTCONN;
    }
    MessagePtr m;
    int r = new_agent_call(bus_, *w, "SetKeepalive", m);
    if (r >= 0) r = sd_bus_message_append(m.get(), "t", interval);
    sd_bus_slot* s = nullptr;
    if (r >= 0) r = sd_bus_call_async(link_of(bus_, *w), &s, m.get(), callback, userdata, 0);
    if (r >= 0) slot.reset(s);
    return r;
}

int WorkerLifecycle::ping(const std::string& name, uint64_t timeout_usec, sd_bus_message_handler_t callback,
                          void* userdata, SlotPtr& slot) {
    const Worker* w = workers_.find(name);
    if (!w || !w->attached) {
        return -ENOTCONN;
    }
    MessagePtr m;
    int r = new_agent_call(bus_, *w, "Ping", m);
    sd_bus_slot* s = nullptr;
    if (r >= 0) r = sd_bus_call_async(link_of(bus_, *w), &s, m.get(), callback, userdata, timeout_usec);
    if (r >= 0) slot.reset(s);
    return r;
}

}  // namespace by::master
