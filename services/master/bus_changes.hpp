// What the bus is told of changes, naming only the properties whose values
// changed. Worker1 (through WorkerRegistry), the Master1 and Builder1
// counters and the STATUS= line are refreshed once per loop iteration,
// however many changes it saw: a worker that finishes a build and starts the
// next in one iteration emits nothing. Build1 changes go out at once, as each
// is a transition a client may wait for.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/config.hpp"
#include "common/raii.hpp"
#include "master/build_queue.hpp"
#include "master/metrics.hpp"
#include "master/store_trouble.hpp"
#include "master/worker_registry.hpp"

namespace by::master {

class Notifier;

class BusChanges {
public:
    BusChanges(sd_bus* bus, const config::Config& config, WorkerRegistry& workers, const BuildQueue& builds,
               Metrics& metrics, const StoreTrouble& trouble);
    BusChanges(const BusChanges&) = delete;
    BusChanges& operator=(const BusChanges&) = delete;

    // The once-per-iteration flush; the first one counts every builder.
    int start(sd_event* event);
    // The missing-worker facts come from here (nullptr: none).
    void set_notifier(Notifier* notifier) { notifier_ = notifier; }

    // Something Worker1 shows of `w` changed: it is re-read (with the
    // notifier's missing-worker facts) and announced in this iteration's flush.
    void worker(Worker& w);
    // Takes the notifier's missing-worker facts of `w` into what Worker1 shows.
    void refresh_missing(Worker& w);
    // Build1's changes, now.
    void build(ActiveBuild& ab);
    // The counters may have changed; `builder`, if given, also had its
    // PendingBuilds/RunningBuilds change.
    void counters(const std::string& builder = {});
    // Master1.TlsFingerprint changed.
    void tls_fingerprint();

private:
    static int on_deferred(sd_event_source* s, void* userdata);
    void flush();

    sd_bus* bus_;
    const config::Config& config_;
    WorkerRegistry& workers_;
    const BuildQueue& builds_;
    Metrics& metrics_;
    const StoreTrouble& trouble_;
    Notifier* notifier_ = nullptr;
    SourcePtr source_;
    std::set<std::string> dirty_builders_;
    // What the Master1 and Builder1 counters and STATUS= last said.
    struct Counters {
        uint32_t connected = 0, running = 0, pending = 0;
        bool operator==(const Counters&) const = default;
    };
    Counters shown_counters_;
    std::map<std::string, std::pair<uint32_t, uint32_t>> shown_builder_counters_;  // pending, running
    std::string shown_status_;
};

}  // namespace by::master
