// What the master's helpers ask of it beyond one line: the notifier
// (worker_facts.hpp) and the remote workers' listener (remote_host.hpp).
#include "master/master.hpp"

namespace by::master {

std::optional<WorkerPresence> Master::worker_presence(const std::string& worker) const {
    const Worker* found = registry_.find(worker);
    if (!found) {
        return std::nullopt;
    }
    const Worker& w = *found;
    WorkerPresence p;
    p.attached = w.attached;
    p.elsewhere = !w.attached && !w.master.empty();
    p.last_connected = w.last_connected;
    // In a cluster, its absence starts when it left whichever master it
    // was on, the same time for every master.
    p.last_disconnected = std::max(w.last_disconnected, w.cluster_disconnected);
    if (w.latent) {
        const LatentMachine& m = w.latent->machine;
        p.latent = true;
        p.trouble_since = m.trouble_since();
        p.start_failed = m.start_failed();
        p.start_failures = m.failures();
        p.last_start_error = m.last_error();
    }
    return p;
}

std::string Master::worker_info(const std::string& worker, const std::string& key) const {
    const Worker* w = registry_.find(worker);
    if (!w) {
        return {};
    }
    auto value = w->info.find(key);
    return value == w->info.end() ? std::string() : value->second;
}

void Master::missing_changed(const std::string& worker) {
    if (Worker* w = find_worker(worker)) {
        emit_worker(*w);  // the next flush shows what changed
    }
}

std::optional<RemoteWorker> Master::remote_worker(const std::string& name) {
    const Worker* w = find_worker(name);
    if (!w) {
        return std::nullopt;
    }
    return RemoteWorker{.cfg = &w->cfg,
                        .configured = w->configured,
                        .attached = w->attached,
                        .link = w->bus_name,
                        .key = worker_lifecycle_->key(*w)};
}

std::vector<std::string> Master::earlier_tokens(const std::string& name) const {
    const Worker* w = registry_.find(name);
    if (!w || !w->latent) {
        return {};
    }
    const LatentSide& side = *w->latent;
    return {side.earlier_tokens.begin(), side.earlier_tokens.end()};
}

int Master::serve_link_object(sd_bus* link, std::vector<SlotPtr>& slots) {
    return register_link_object(*this, link, slots);
}

}  // namespace by::master
