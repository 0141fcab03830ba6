// The master: the coordinator that loads the configuration and the state,
// wires the worker and build lifecycles to the bus, the store and the
// timers, and answers the narrow questions its helpers ask (latent_host.hpp,
// worker_facts.hpp, remote_host.hpp). What happens to workers is in
// worker_lifecycle.hpp, to builds in build_lifecycle.hpp; the bus_*.cpp
// files are its D-Bus face; the decisions themselves live in dispatch.* and
// build.*.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/bus.hpp"
#include "common/config.hpp"
#include "common/raii.hpp"
#include "master/build_lifecycle.hpp"
#include "master/build_queue.hpp"
#include "master/bus_changes.hpp"
#include "master/cluster.hpp"
#include "master/latent.hpp"
#include "master/metrics.hpp"
#include "master/remote_host.hpp"
#include "master/status.hpp"
#include "master/store.hpp"
#include "master/store_trouble.hpp"
#include "master/worker.hpp"
#include "master/worker_facts.hpp"
#include "master/worker_lifecycle.hpp"
#include "master/worker_registry.hpp"

namespace by::master {

class Notifier;
class PgListener;

class Master final : public LatentHost, public WorkerFacts, public RemoteHost {
public:
    Master(sd_event* event, sd_bus* bus, std::string config_path, std::string state_directory);
    Master(const Master&) = delete;
    Master& operator=(const Master&) = delete;
    ~Master();

    // Loads the config and state, recovers builds, registers the bus objects
    // and takes the bus name. On failure returns false with `error` set.
    bool start(std::string& error);
    // Master1.Reload: the old configuration stays if the new one is invalid.
    Status reload();
    // Called after each successful reload, with the new configuration
    // (main.cpp moves the remote workers' listener).
    void on_reloaded(std::function<void(const config::Config&)> hook) { reloaded_ = std::move(hook); }
    // Master1.Describe.
    std::string describe() const;
    // The master is about to exit: stop what must not outlive it.
    void stopping();

    // What the bus objects work with. Returned pointers live until the next
    // call that changes the master (a bus dispatch is one such unit).
    BuildLifecycle& builds() { return *build_lifecycle_; }
    WorkerLifecycle& workers() { return *worker_lifecycle_; }
    const BuildQueue& queue() const { return queue_; }
    WorkerRegistry& registry() { return registry_; }
    const config::Config& config() const { return config_; }
    const config::Builder* find_builder(const std::string& name) const;
    const std::string& state_directory() const { return state_directory_; }
    sd_bus* bus() const { return bus_; }
    // The cluster's members (cluster.hpp); set once start() succeeded.
    const ClusterMembership& cluster() const { return *cluster_; }
    // Prometheus metrics; touched from the loop thread only.
    Metrics& metrics() { return metrics_; }

    // What LatentControl asks (latent_host.hpp).
    const WorkerRegistry::Workers& all_workers() const override { return registry_.all(); }
    Worker* find_worker(const std::string& name) override { return registry_.find(name); }
    void emit_worker(Worker& w) override;
    void request_dispatch() override { build_lifecycle_->request_dispatch(); }
    void fail_waiting_builds(Worker& w, const std::string& why, const std::string& log_text) override {
        build_lifecycle_->fail_held(w, why, log_text);
    }
    void drop_worker(const std::string& name, DetachCause cause, const std::string& reason) override {
        worker_lifecycle_->drop(name, cause, reason);
    }
    // Master1.TlsFingerprint: the certificate remote workers see (remote.cpp
    // sets it at start and on reload); empty with tls = no.
    const std::string& tls_fingerprint() const override { return tls_fingerprint_; }

    // What the notifier asks (master_answers.cpp).
    std::optional<WorkerPresence> worker_presence(const std::string& worker) const override;
    std::string worker_info(const std::string& worker, const std::string& key) const override;
    void missing_changed(const std::string& worker) override;

    // What the remote workers' listener asks (remote_host.hpp; master_answers.cpp).
    std::optional<RemoteWorker> remote_worker(const std::string& name) override;
    std::vector<std::string> earlier_tokens(const std::string& name) const override;
    int serve_link_object(sd_bus* link, std::vector<SlotPtr>& slots) override;
    Status attach_remote(const std::string& name, const std::string& sender, const std::string& peer, sd_bus* link,
                         std::function<void(const std::string&)> drop_link,
                         const std::map<std::string, std::string>& info, std::string& path) override {
        return worker_lifecycle_->attach_remote(name, sender, peer, link, std::move(drop_link), info, path);
    }
    void link_lost(const std::string& sender, const std::string& reason) override {
        worker_lifecycle_->link_lost(sender, reason);
    }
    int tell_worker_keepalive(const std::string& name, uint64_t interval, sd_bus_message_handler_t callback,
                              void* userdata, SlotPtr& slot) override {
        return worker_lifecycle_->tell_keepalive(name, interval, callback, userdata, slot);
    }
    int ping_worker(const std::string& name, uint64_t timeout_usec, sd_bus_message_handler_t callback,
                    void* userdata, SlotPtr& slot) override {
        return worker_lifecycle_->ping(name, timeout_usec, callback, userdata, slot);
    }
    void set_tls_fingerprint(const std::string& fingerprint) override;

private:
    void apply_config(config::Config&& c);
    // The workers whose builds ended: their latent state, and a removed or
    // shutting-down one may leave now.
    void settle(const std::set<std::string>& names);
    // In a cluster, after each heartbeat: which live master each worker
    // not attached here is attached to, and when it last left one
    // (Worker1.Master; the missing-worker notices follow it).
    void sync_cluster_presence(const std::set<std::string>& live);
    // Every second while the store fails: what waits for it tries again.
    void retry_store();

    sd_event* event_;
    sd_bus* bus_;
    std::string config_path_;
    std::string state_directory_;
    std::string tls_fingerprint_;
    config::Config config_;
    Fd state_lock_;               // flock()ed for as long as we run
    std::vector<SlotPtr> slots_;
    Metrics metrics_;
    WorkerRegistry registry_{[this] {
        if (changes_) changes_->counters();
    }};
    BuildQueue queue_;
    // Set up in start(), in this order, once the store is open.
    std::unique_ptr<Store> store_;
    std::unique_ptr<ClusterMembership> cluster_;
    std::unique_ptr<StoreTrouble> trouble_;
    std::unique_ptr<BusChanges> changes_;
    std::unique_ptr<Notifier> notifier_;  // missing-worker and build mail
    std::unique_ptr<LatentControl> latent_;
    std::unique_ptr<BuildLifecycle> build_lifecycle_;
    std::unique_ptr<WorkerLifecycle> worker_lifecycle_;
    std::unique_ptr<PgListener> listener_;  // a shared store's announcements
    std::function<void(const config::Config&)> reloaded_;
};

// Registers the vtables of every object (bus_master.cpp, bus_objects.cpp, bus_link.cpp).
int register_master_objects(Master& m, sd_bus* bus, std::vector<SlotPtr>& slots);
int register_worker_objects(Master& m, sd_bus* bus, std::vector<SlotPtr>& slots);
int register_link_object(Master& m, sd_bus* bus, std::vector<SlotPtr>& slots);
// A copy of `vtable` (of `interface`, registered with the Master as its
// userdata) whose method calls are counted in Metrics::bus_call
// (bus_counted.cpp). The copy lives as long as the program.
const sd_bus_vtable* counted_vtable(const char* interface, const sd_bus_vtable* vtable);

}  // namespace by::master
