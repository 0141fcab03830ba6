// What LatentControl (latent*.cpp) asks of the master that runs it: the
// workers it looks after, and the few things a latent machine's change sets
// off elsewhere. Master implements it; LatentControl sees nothing else of
// Master.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "master/metrics.hpp"

namespace by::master {

struct Worker;

class LatentHost {
public:
    // Every configured worker, latent or not, by name.
    virtual const std::map<std::string, std::unique_ptr<Worker>>& all_workers() const = 0;
    // nullptr: no such worker (any more).
    virtual Worker* find_worker(const std::string& name) = 0;
    // Worker1 must announce what changed of `w` (its state, its start
    // failures, its instance) at the end of this loop iteration.
    virtual void emit_worker(Worker& w) = 0;
    // Dispatch again later in this loop iteration: a worker may take builds
    // now, or may no longer.
    virtual void request_dispatch() = 0;
    // The builds held for `w` while its machine came up end retry with
    // `why`; `log_text` goes into each one's log first.
    virtual void fail_waiting_builds(Worker& w, const std::string& why, const std::string& log_text) = 0;
    // Detaches worker `name` and closes its link (its machine was given up).
    virtual void drop_worker(const std::string& name, DetachCause cause, const std::string& reason) = 0;
    // The master's TLS certificate, which a machine's worker must see (empty
    // with tls = no).
    virtual const std::string& tls_fingerprint() const = 0;

protected:
    ~LatentHost() = default;
};

}  // namespace by::master
