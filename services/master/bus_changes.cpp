// What the bus is told: Worker1 and Build1 changes, the Master1 and
// Builder1 counters, the STATUS= line, once per loop iteration (Build1's at
// once), naming only what changed.
#include <systemd/sd-daemon.h>

#include "master/master.hpp"
#include "master/notifier.hpp"

namespace by::master {

void Master::counters_changed(const std::string& builder) {
    if (!builder.empty()) {
        dirty_builders_.insert(builder);
    }
    if (changes_source_) {
        sd_event_source_set_enabled(changes_source_.get(), SD_EVENT_ONESHOT);
    }
}

int Master::on_changes_deferred(sd_event_source*, void* userdata) {
    static_cast<Master*>(userdata)->flush_changes();
    return 0;
}

namespace {

// sd_bus_emit_properties_changed_strv() wants a NULL-terminated char**.
void emit_changed(sd_bus* bus, const std::string& path, const char* iface, std::vector<const char*>& names) {
    if (names.empty()) {
        return;
    }
    names.push_back(nullptr);
    sd_bus_emit_properties_changed_strv(bus, path.c_str(), iface, const_cast<char**>(names.data()));
}

}  // namespace

void Master::flush_changes() {
    const uint64_t realtime = bus::now_realtime_usec();
    workers_.flush(bus_, [&](const Worker& w) { metrics_.worker_shown(w.cfg.name, w.shown, realtime); });

    Counters now{connected_workers(), builds_.running(), builds_.pending()};
    std::vector<const char*> names;
    if (now.connected != shown_counters_.connected) names.push_back("ConnectedWorkers");
    if (now.running != shown_counters_.running) names.push_back("RunningBuilds");
    if (now.pending != shown_counters_.pending) names.push_back("PendingBuilds");
    emit_changed(bus_, bus::master_path, bus::master_iface, names);
    shown_counters_ = now;

    for (const auto& name : dirty_builders_) {
        std::pair<uint32_t, uint32_t> counts{pending_builds(name), running_builds(name)};
        // A removed builder's builds still count while they wait or run.
        if (find_builder(name) || counts.first || counts.second) {
            metrics_.builder_counts(name, counts.first, counts.second);
        } else {
            metrics_.builder_forgotten(name);
        }
        if (!find_builder(name)) {
            shown_builder_counters_.erase(name);
            continue;
        }
        auto [it, added] = shown_builder_counters_.try_emplace(name, counts);
        if (added || it->second != counts) {
            it->second = counts;
            std::string path = bus::path_encode(bus::builder_prefix, name);
            sd_bus_emit_properties_changed(bus_, path.c_str(), bus::builder_iface, "PendingBuilds", "RunningBuilds",
                                           nullptr);
        }
    }
    dirty_builders_.clear();

    std::string status = fmt::format("{}/{} workers attached, {} builds running, {} pending", now.connected,
                                     workers_.size(), now.running, now.pending);
    if (store_trouble_) {
        status += fmt::format("; cannot write the state database ({}): changes wait, retried every second",
                              *store_trouble_);
    }
    if (status != shown_status_) {
        sd_notify(0, ("STATUS=" + status).c_str());
        shown_status_ = std::move(status);
    }
}

void Master::emit_worker(Worker& w) {
    if (notifier_) {
        notifier_->worker_changed(w.cfg.name);  // it decides MissingSince
        refresh_missing(w);
    }
    workers_.changed(w);
}

void Master::refresh_missing(Worker& w) {
    if (notifier_) {
        workers_.set_missing(w, notifier_->missing_since(w.cfg.name), notifier_->missing_notified(w.cfg.name));
    }
}

void Master::emit_build(ActiveBuild& ab) {
    auto names = changed_properties(ab.shown, ab.build);
    emit_changed(bus_, ab.path, bus::build_iface, names);
    ab.shown = ab.build;
}

void Master::set_tls_fingerprint(const std::string& fingerprint) {
    if (fingerprint == tls_fingerprint_) {
        return;
    }
    tls_fingerprint_ = fingerprint;
    sd_bus_emit_properties_changed(bus_, bus::master_path, bus::master_iface, "TlsFingerprint", nullptr);
}

}  // namespace by::master
