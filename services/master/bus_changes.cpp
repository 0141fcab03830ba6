#include "master/bus_changes.hpp"

#include <vector>

#include <systemd/sd-daemon.h>

#include "common/bus.hpp"
#include "common/log.hpp"
#include "master/notifier.hpp"

namespace by::master {

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

BusChanges::BusChanges(sd_bus* bus, const config::Config& config, WorkerRegistry& workers, const BuildQueue& builds,
                       Metrics& metrics, const StoreTrouble& trouble)
    : bus_(bus), config_(config), workers_(workers), builds_(builds), metrics_(metrics), trouble_(trouble) {}

int BusChanges::start(sd_event* event) {
    // The first flush counts every builder's queue, for the metrics.
    for (const auto& [name, b] : config_.builders) {
        dirty_builders_.insert(name);
    }
    for (const auto& [id, ab] : builds_.all_active()) {
        dirty_builders_.insert(ab->build.builder);
    }
    sd_event_source* s = nullptr;
    int r = sd_event_add_defer(event, &s, &BusChanges::on_deferred, this);
    if (r < 0) {
        return r;
    }
    source_.reset(s);
    return sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
}

void BusChanges::counters(const std::string& builder) {
    if (!builder.empty()) {
        dirty_builders_.insert(builder);
    }
    if (source_) {
        sd_event_source_set_enabled(source_.get(), SD_EVENT_ONESHOT);
    }
}

int BusChanges::on_deferred(sd_event_source*, void* userdata) {
    static_cast<BusChanges*>(userdata)->flush();
    return 0;
}

void BusChanges::flush() {
    const uint64_t realtime = bus::now_realtime_usec();
    workers_.flush(bus_, [&](const Worker& w) { metrics_.worker_shown(w.cfg.name, w.shown, realtime); });

    Counters now{workers_.connected(), builds_.running(), builds_.pending()};
    std::vector<const char*> names;
    if (now.connected != shown_counters_.connected) names.push_back("ConnectedWorkers");
    if (now.running != shown_counters_.running) names.push_back("RunningBuilds");
    if (now.pending != shown_counters_.pending) names.push_back("PendingBuilds");
    emit_changed(bus_, bus::master_path, bus::master_iface, names);
    shown_counters_ = now;

    for (const auto& name : dirty_builders_) {
        std::pair<uint32_t, uint32_t> counts{builds_.pending(name), builds_.running(name)};
        const bool configured = config_.builders.count(name) > 0;
        // A removed builder's builds still count while they wait or run.
        if (configured || counts.first || counts.second) {
            metrics_.builder_counts(name, counts.first, counts.second);
        } else {
            metrics_.builder_forgotten(name);
        }
        if (!configured) {
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
    if (trouble_.trouble()) {
        status += fmt::format("; cannot write the state database ({}): changes wait, retried every second",
                              *trouble_.trouble());
    }
    if (status != shown_status_) {
        sd_notify(0, ("STATUS=" + status).c_str());
        shown_status_ = std::move(status);
    }
}

void BusChanges::worker(Worker& w) {
    if (notifier_) {
        notifier_->worker_changed(w.cfg.name);  // it decides MissingSince
        refresh_missing(w);
    }
    workers_.changed(w);
}

void BusChanges::refresh_missing(Worker& w) {
    if (notifier_) {
        workers_.set_missing(w, notifier_->missing_since(w.cfg.name), notifier_->missing_notified(w.cfg.name));
    }
}

void BusChanges::build(ActiveBuild& ab) {
    auto names = changed_properties(ab.shown, ab.build);
    emit_changed(bus_, ab.path, bus::build_iface, names);
    ab.shown = ab.build;
}

void BusChanges::tls_fingerprint() {
    sd_bus_emit_properties_changed(bus_, bus::master_path, bus::master_iface, "TlsFingerprint", nullptr);
}

}  // namespace by::master
