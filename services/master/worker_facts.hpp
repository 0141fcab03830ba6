// What the notifier (notifier.hpp) asks of the master about a worker, and
// the one thing it tells back: that the worker's missing facts changed, so
// that the master shows the change on the bus with the rest of the worker's.
// The master implements it (master_answers.cpp); the notifier knows nothing
// else of the master.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace by::master {

// Where a worker is, as watching for its absence needs it.
struct WorkerPresence {
    bool attached = false;
    // In a cluster: attached to another live master (so not missing).
    bool elsewhere = false;
    uint64_t last_connected = 0;      // 0: never attached
    uint64_t last_disconnected = 0;   // 0: never detached
    // A latent worker's machine: since when it has been wanted and not come
    // up (0: not wanted, or up), whether a start failed in that time, and
    // the failed starts in a row with the last one's error.
    bool latent = false;
    uint64_t trouble_since = 0;
    bool start_failed = false;
    unsigned start_failures = 0;
    std::string last_start_error;
};

class WorkerFacts {
public:
    // nullopt: the master has no such worker.
    virtual std::optional<WorkerPresence> worker_presence(const std::string& worker) const = 0;
    // A value from what the worker said of itself when it last attached
    // (Worker1.Info, e.g. "host", "admin"); empty if it did not say.
    virtual std::string worker_info(const std::string& worker, const std::string& key) const = 0;
    // Worker1.MissingSince or MissingNotified of `worker` changed.
    virtual void missing_changed(const std::string& worker) = 0;

protected:
    ~WorkerFacts() = default;
};

}  // namespace by::master
