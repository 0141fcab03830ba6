// A worker as the master holds it: its configuration, its link while
// attached, its admin state and the builds it has. WorkerRegistry
// (worker_registry.hpp) owns every Worker and is the only writer of the
// fields that make up its state, so that each change is announced once.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "common/config.hpp"
#include "common/raii.hpp"
#include "master/latent.hpp"
#include "master/shown.hpp"

namespace by::master {

enum class WorkerStateName { offline, idle, building, paused, substantiating, insubstantiating };
std::string_view to_string(WorkerStateName s);

struct Worker {
    config::Worker cfg;
    std::string path;
    bool configured = true;       // false: removed by a reload, waiting for its builds
    // The link, while attached.
    bool attached = false;
    std::string bus_name;         // the worker's unique name on the system bus, or "tcp#N"
    TrackPtr track;               // tells us when that name goes away
    // A remote worker's own TCP connection (nullptr: the system bus), and
    // how to close it when the master detaches the worker (remote.cpp).
    sd_bus* link_bus = nullptr;
    std::function<void(const std::string& reason)> drop_link;
    std::map<std::string, std::string> info;
    // Admin state, persisted.
    bool paused = false;
    std::string pause_reason;
    uint64_t last_connected = 0;
    uint64_t last_disconnected = 0;
    // In a cluster: the member it is attached to (this master's name while
    // attached here, a live other's, or empty), and when it last detached
    // from any master (Master::sync_cluster_presence).
    std::string master;
    uint64_t cluster_disconnected = 0;
    bool unsaved = false;         // the store missed a change of the above; retried
    // Missing-worker facts as the notifier last gave them (Worker1.MissingSince, MissingNotified).
    uint64_t missing_since = 0;
    bool missing_notified = false;
    // Builds.
    bool shutting_down = false;   // graceful Shutdown(): no new builds, stop when idle
    // A StartBuild could not even be sent on its link (closed under us): no
    // new builds until it attaches again, which the link's loss will show.
    bool unreachable = false;
    std::set<uint64_t> running;
    // Builds handed to a latent worker whose machine is still coming up:
    // running on it, but not sent until it attaches.
    std::set<uint64_t> held;
    // Builds that ran on it when it was lost, waiting in state cleanup
    // (worker_cleanup.cpp) until it attaches again or `cleanup_timer` fires.
    std::set<uint64_t> cleanup;
    SourcePtr cleanup_timer;
    uint64_t last_assigned = 0;
    std::unique_ptr<LatentSide> latent;  // type = latent only
    WorkerShown shown;            // what Worker1 last told the bus

    WorkerStateName state() const;
};

// Worker1's values for `w` now, as its getters return them.
WorkerShown shown_of(const Worker& w);

}  // namespace by::master
