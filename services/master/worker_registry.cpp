#include "master/worker_registry.hpp"

#include <vector>

#include <nlohmann/json.hpp>

#include "common/bus.hpp"

namespace by::master {

std::string_view to_string(WorkerStateName s) {
    switch (s) {
    case WorkerStateName::offline: return "offline";
    case WorkerStateName::idle: return "idle";
    case WorkerStateName::building: return "building";
    case WorkerStateName::paused: return "paused";
    case WorkerStateName::substantiating: return "substantiating";
    case WorkerStateName::insubstantiating: return "insubstantiating";
    }
    return "offline";
}

WorkerStateName Worker::state() const {
    if (latent && cfg.type == config::WorkerType::latent && !(attached && paused)) {
        switch (latent->machine.state()) {
        case LatentState::offline: return WorkerStateName::offline;
        case LatentState::substantiating: return WorkerStateName::substantiating;
        case LatentState::idle: return WorkerStateName::idle;
        case LatentState::building: return WorkerStateName::building;
        case LatentState::insubstantiating: return WorkerStateName::insubstantiating;
        }
    }
    if (!attached) {
        return WorkerStateName::offline;
    }
    if (paused) {
        return WorkerStateName::paused;
    }
    return running.empty() ? WorkerStateName::idle : WorkerStateName::building;
}

WorkerShown shown_of(const Worker& w) {
    WorkerShown s;
    s.name = w.cfg.name;
    s.type = std::string(config::to_string(w.cfg.type));
    s.state = std::string(to_string(w.state()));
    s.connected = w.attached;
    s.master = w.master;
    s.paused = w.paused;
    s.pause_reason = w.pause_reason;
    s.max_builds = w.cfg.max_builds;
    s.running_builds = static_cast<uint32_t>(w.running.size());
    s.properties = w.cfg.properties;
    s.default_properties = w.cfg.default_properties;
    s.info = w.info;
    s.keepalive_interval = w.cfg.keepalive_interval;
    s.missing_timeout = w.cfg.missing_timeout;
    s.notify_on_missing = w.cfg.notify_on_missing;
    s.last_connected = w.last_connected;
    s.last_disconnected = w.last_disconnected;
    s.configured = w.configured;
    s.missing_since = w.missing_since;
    s.missing_notified = w.missing_notified;
    s.backend = w.cfg.backend;
    if (w.latent) {
        // Latent workers only; the others show 0 and empty strings.
        s.build_wait_timeout = w.cfg.build_wait_timeout;
        s.instance_start = w.latent->start;
        s.instance = w.latent->instance;
        s.start_failures = w.latent->machine.failures();
        s.quarantined_until = w.latent->machine.quarantine_until();
        s.last_start_error = w.latent->machine.last_error();
    }
    return s;
}

Worker* WorkerRegistry::find(const std::string& name) {
    auto it = workers_.find(name);
    return it == workers_.end() ? nullptr : it->second.get();
}

const Worker* WorkerRegistry::find(const std::string& name) const {
    auto it = workers_.find(name);
    return it == workers_.end() ? nullptr : it->second.get();
}

Worker* WorkerRegistry::by_sender(const std::string& sender) {
    auto it = sender_to_worker_.find(sender);
    return it == sender_to_worker_.end() ? nullptr : find(it->second);
}

Worker& WorkerRegistry::add(const config::Worker& cfg, const std::optional<WorkerRecord>& saved) {
    auto w = std::make_unique<Worker>();
    w->cfg = cfg;
    w->path = bus::path_encode(bus::worker_prefix, cfg.name);
    if (saved) {
        w->paused = saved->paused;
        w->pause_reason = saved->pause_reason;
        w->last_connected = saved->last_connected;
        w->last_disconnected = saved->last_disconnected;
        w->info = saved->info;
    }
    w->shown = shown_of(*w);
    dispatch_changed_.insert(cfg.name);
    auto& ref = *w;
    workers_[cfg.name] = std::move(w);
    return ref;
}

void WorkerRegistry::forget(const std::string& name) {
    auto it = workers_.find(name);
    if (it == workers_.end()) {
        return;
    }
    if (it->second->attached) {
        unlink(*it->second, it->second->last_disconnected);
    }
    dirty_.erase(name);
    holding_.erase(name);
    dispatch_changed_.insert(name);
    workers_.erase(it);
}

void WorkerRegistry::configure(Worker& w, const config::Worker* cfg) {
    if (cfg) {
        w.cfg = *cfg;
    }
    w.configured = cfg != nullptr;
    changed(w);
}

void WorkerRegistry::link(Worker& w, const std::string& sender, const std::map<std::string, std::string>& info,
                          uint64_t now) {
    connected_ += w.attached ? 0 : 1;
    w.attached = true;
    w.unreachable = false;
    w.bus_name = sender;
    w.info = info;
    w.shutting_down = false;
    w.last_connected = now;
    w.master = master_name_;
    sender_to_worker_[sender] = w.cfg.name;
    changed(w);
}

std::function<void(const std::string&)> WorkerRegistry::unlink(Worker& w, uint64_t now) {
    connected_ -= w.attached ? 1 : 0;
    sender_to_worker_.erase(w.bus_name);
    auto drop_link = std::move(w.drop_link);
    w.drop_link = nullptr;
    w.link_bus = nullptr;
    w.attached = false;
    w.bus_name.clear();
    w.track.reset();
    w.shutting_down = false;
    w.last_disconnected = now;
    w.master.clear();
    changed(w);
    return drop_link;
}

void WorkerRegistry::set_paused(Worker& w, bool paused, const std::string& reason) {
    w.paused = paused;
    w.pause_reason = reason;
    changed(w);
}

void WorkerRegistry::set_shutting_down(Worker& w) {
    w.shutting_down = true;
    changed(w);
}

void WorkerRegistry::set_unreachable(Worker& w) {
    w.unreachable = true;
    dispatch_changed_.insert(w.cfg.name);
}

void WorkerRegistry::set_last_disconnected(Worker& w, uint64_t at) {
    w.last_disconnected = at;
    changed(w);
}

void WorkerRegistry::set_missing(Worker& w, uint64_t since, bool notified) {
    if (w.missing_since != since || w.missing_notified != notified) {
        w.missing_since = since;
        w.missing_notified = notified;
        changed(w);
    }
}

void WorkerRegistry::add_running(Worker& w, uint64_t id) {
    w.running.insert(id);
    changed(w);
}

void WorkerRegistry::add_held(Worker& w, uint64_t id) {
    w.held.insert(id);
    holding_.insert(w.cfg.name);
    changed(w);
}

void WorkerRegistry::add_cleanup(Worker& w, uint64_t id) { w.cleanup.insert(id); }

std::set<uint64_t> WorkerRegistry::take_running(Worker& w) {
    auto ids = std::move(w.running);
    w.running.clear();
    changed(w);
    return ids;
}

std::set<uint64_t> WorkerRegistry::take_held(Worker& w) {
    auto ids = std::move(w.held);
    w.held.clear();
    holding_.erase(w.cfg.name);
    return ids;
}

std::set<uint64_t> WorkerRegistry::take_cleanup(Worker& w) {
    auto ids = std::move(w.cleanup);
    w.cleanup.clear();
    return ids;
}

bool WorkerRegistry::remove_build(Worker& w, uint64_t id) {
    if (w.running.erase(id) + w.held.erase(id) + w.cleanup.erase(id) == 0) {
        return false;
    }
    if (w.held.empty()) {
        holding_.erase(w.cfg.name);
    }
    changed(w);
    return true;
}

void WorkerRegistry::changed(const Worker& w) {
    dirty_.insert(w.cfg.name);
    dispatch_changed_.insert(w.cfg.name);
    if (on_change_) {
        on_change_();
    }
}

std::set<std::string> WorkerRegistry::take_dispatch_changes() {
    auto names = std::move(dispatch_changed_);
    dispatch_changed_.clear();
    return names;
}

const WorkerShown& WorkerRegistry::current(const Worker& w) {
    if (&w == emitting_) {
        return w.shown;  // the values flush() just took, as it emits them
    }
    scratch_ = shown_of(w);
    return scratch_;
}

void WorkerRegistry::flush(sd_bus* bus, const std::function<void(const Worker&)>& seen) {
    auto names = std::move(dirty_);
    dirty_.clear();
    for (const auto& name : names) {
        Worker* w = find(name);
        if (!w) {
            continue;
        }
        WorkerShown now = shown_of(*w);
        auto changed = changed_properties(w->shown, now);
        w->shown = std::move(now);
        if (!changed.empty()) {
            changed.push_back(nullptr);  // a NULL-terminated strv
            emitting_ = w;
            sd_bus_emit_properties_changed_strv(bus, w->path.c_str(), bus::worker_iface,
                                                const_cast<char**>(changed.data()));
            emitting_ = nullptr;
        }
        seen(*w);
    }
}

void WorkerRegistry::describe(nlohmann::json& out) const {
    out = nlohmann::json::object();
    for (const auto& [name, w] : workers_) {
        const WorkerShown s = shown_of(*w);
        auto& j = out[name] = nlohmann::json::object();
        for (const WorkerProperty& p : worker_properties) {
            if (!p.describe_key || (p.latent_only && !w->latent)) {
                continue;
            }
            p.to_json(p.latent_only ? j["latent"][p.describe_key] : j[p.describe_key], s);
        }
        // Worker1 counts them; Describe names them.
        j["running_builds"] = w->running;
    }
}

}  // namespace by::master
