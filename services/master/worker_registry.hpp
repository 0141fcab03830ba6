// Every worker the master holds, and the one place their state changes.
// Each function that changes what Worker1 shows marks the worker changed;
// flush() then emits, once per loop iteration, PropertiesChanged naming
// exactly the properties whose values differ from what the bus was last
// told (worker_properties in shown.hpp is the list).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "master/store.hpp"
#include "master/worker.hpp"

namespace by::master {

class WorkerRegistry {
public:
    using Workers = std::map<std::string, std::unique_ptr<Worker>>;

    // `on_change` is called whenever a worker is marked changed (the master
    // arms its once-per-iteration flush there).
    explicit WorkerRegistry(std::function<void()> on_change) : on_change_(std::move(on_change)) {}
    // This master's name, for Worker1.Master while a worker is attached here.
    void set_master_name(std::string name) { master_name_ = std::move(name); }
    const std::string& master_name() const { return master_name_; }

    Worker* find(const std::string& name);
    const Worker* find(const std::string& name) const;
    // The attached worker whose link is `sender` (a bus name or "tcp#N").
    Worker* by_sender(const std::string& sender);
    const Workers& all() const { return workers_; }
    size_t size() const { return workers_.size(); }
    unsigned connected() const { return connected_; }

    // A worker new to the master, with the admin state `saved` (if any).
    Worker& add(const config::Worker& cfg, const std::optional<WorkerRecord>& saved);
    void forget(const std::string& name);
    // A reload's new settings for `w`; nullptr: it left the configuration.
    void configure(Worker& w, const config::Worker* cfg);

    // The link: attached as `sender` at `now`, or gone at `now` (returns
    // how to close it, if the master must).
    void link(Worker& w, const std::string& sender, const std::map<std::string, std::string>& info, uint64_t now);
    std::function<void(const std::string&)> unlink(Worker& w, uint64_t now);
    void set_paused(Worker& w, bool paused, const std::string& reason);
    void set_shutting_down(Worker& w);
    void set_unreachable(Worker& w);
    void set_last_disconnected(Worker& w, uint64_t at);
    void set_missing(Worker& w, uint64_t since, bool notified);

    // Its builds: running (sent, or held until a latent machine attaches)
    // and waiting for cleanup after a loss.
    void add_running(Worker& w, uint64_t id);
    void add_held(Worker& w, uint64_t id);
    void add_cleanup(Worker& w, uint64_t id);
    std::set<uint64_t> take_running(Worker& w);
    std::set<uint64_t> take_held(Worker& w);
    std::set<uint64_t> take_cleanup(Worker& w);
    // False if `id` was not the worker's.
    bool remove_build(Worker& w, uint64_t id);

    // Something else Worker1 shows changed (a latent machine's state, a reload).
    void changed(const Worker& w);
    // What the getters return: the worker's values now (while flush()
    // emits a worker's changes, the values it just took, unrecomputed).
    const WorkerShown& current(const Worker& w);
    // Emits the changes; `seen` gets each flushed worker's values.
    void flush(sd_bus* bus, const std::function<void(const Worker&)>& seen);

    // The workers whose dispatch facts (link, admin state, load, settings)
    // may have changed since the last call, or that were forgotten; the
    // dispatcher's index is brought up to date from these alone.
    std::set<std::string> take_dispatch_changes();
    // The workers that hold builds for their latent machine.
    const std::set<std::string>& holding() const { return holding_; }

    // Master1.Describe's "workers" object.
    void describe(nlohmann::json& out) const;

private:
    Workers workers_;
    std::map<std::string, std::string> sender_to_worker_;
    std::set<std::string> dirty_;
    std::set<std::string> dispatch_changed_;
    std::set<std::string> holding_;
    unsigned connected_ = 0;
    WorkerShown scratch_;
    const Worker* emitting_ = nullptr;
    std::function<void()> on_change_;
    std::string master_name_;
};

}  // namespace by::master
