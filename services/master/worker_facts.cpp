// The master's answers to the notifier (worker_facts.hpp).
#include "master/master.hpp"

namespace by::master {

std::optional<WorkerPresence> Master::worker_presence(const std::string& worker) const {
    const Worker* found = workers_.find(worker);
    if (!found) {
        return std::nullopt;
    }
    const Worker& w = *found;
    WorkerPresence p;
    p.attached = w.attached;
    p.last_connected = w.last_connected;
    p.last_disconnected = w.last_disconnected;
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
    const Worker* w = workers_.find(worker);
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

}  // namespace by::master
