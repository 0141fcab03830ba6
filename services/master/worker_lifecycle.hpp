// What happens to workers: they attach under the identity rule
// (worker_attach.cpp) and detach or are lost (worker_detach.cpp), an admin
// pauses or shuts them down (worker_admin.cpp), and the builds of a lost
// worker wait for its cleanup (worker_cleanup.cpp). The workers themselves
// and their state are held in WorkerRegistry (worker_registry.hpp); this
// class holds what happens to them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/config.hpp"
#include "common/raii.hpp"
#include "master/build_lifecycle.hpp"
#include "master/build_queue.hpp"
#include "master/bus_changes.hpp"
#include "master/latent.hpp"
#include "master/metrics.hpp"
#include "master/status.hpp"
#include "master/store.hpp"
#include "master/store_trouble.hpp"
#include "master/worker_registry.hpp"

namespace by::master {

// Who is calling, as the bus vouches for it.
struct Caller {
    std::string sender;       // unique bus name
    bool have_uid = false;
    uid_t uid = 0;
    pid_t pid = 0;
    std::string unit;         // systemd unit of the caller, if known
};

class WorkerLifecycle {
public:
    // What it works with; each outlives it.
    struct Parts {
        sd_event* event;
        sd_bus* bus;
        const config::Config& config;
        Store& store;
        WorkerRegistry& workers;
        BuildQueue& queue;
        BuildLifecycle& builds;
        Metrics& metrics;
        BusChanges& changes;
        StoreTrouble& trouble;
        LatentControl& latent;
    };
    explicit WorkerLifecycle(Parts parts);
    WorkerLifecycle(const WorkerLifecycle&) = delete;
    WorkerLifecycle& operator=(const WorkerLifecycle&) = delete;

    // A worker new to the configuration, with its stored admin state.
    Worker& add(const config::Worker& cfg);
    // A worker that left the configuration and has nothing left to run.
    void forget(const std::string& name);
    // The secret a remote worker proves at the handshake: its password, or
    // for a latent worker the token of its current start (nullptr: none now).
    const std::string* key(const Worker& w) const;

    // WorkerLink1.Attach on the system bus.
    Status attach(const Caller& caller, const std::string& name, const std::map<std::string, std::string>& info,
                  std::string& path);
    // A remote worker that passed its handshake on `link` (remote_host.hpp).
    Status attach_remote(const std::string& name, const std::string& sender, const std::string& peer, sd_bus* link,
                         std::function<void(const std::string&)> drop_link,
                         const std::map<std::string, std::string>& info, std::string& path);
    // WorkerLink1.Detach and ShutdownGracefully, from the worker itself.
    Status link_detach(const std::string& sender, const std::string& reason);
    Status link_shutdown(const std::string& sender);
    // The link `sender` ended without the worker saying so.
    void link_lost(const std::string& sender, const std::string& reason);
    // Detaches worker `name` and closes its link.
    // This master was fenced: every remote worker is let go (detached,
    // its connection closed) so that it attaches to a live master.
    void let_go_remote(const std::string& why);
    void drop(const std::string& name, DetachCause cause, const std::string& reason);
    // Agent1.SetKeepalive and Ping of a remote worker (remote_host.hpp).
    int tell_keepalive(const std::string& name, uint64_t interval, sd_bus_message_handler_t callback, void* userdata,
                       SlotPtr& slot);
    int ping(const std::string& name, uint64_t timeout_usec, sd_bus_message_handler_t callback, void* userdata,
             SlotPtr& slot);

    // Worker1.Pause, Unpause and Shutdown.
    Status pause(Worker& w, const std::string& reason);
    Status unpause(Worker& w);
    Status shutdown(Worker& w, bool graceful);

    // Called when a worker's load drops: a removed or shutting-down worker
    // leaves once it has nothing left to run.
    void settle(Worker& w);
    // False (and w.unsaved set) when the store did not take it.
    bool save(Worker& w);
    // The workers whose admin state the store missed; false while it still fails.
    bool save_unsaved();

private:
    // The end of every attach, local or remote.
    void mark_attached(Worker& w, const std::string& sender, const std::map<std::string, std::string>& info,
                       const std::string& how);
    // `lost`: the link ended without the worker saying so (it crashed, was
    // killed, or the network failed), so its builds' processes may live on.
    void detach(Worker& w, DetachCause cause, const std::string& reason, bool lost = false);
    // Tells the worker to exit, and detaches it.
    void stop(Worker& w, DetachCause cause, const std::string& reason);
    static int on_track_gone(sd_bus_track* track, void* userdata);
    // Builds of a lost worker (worker_cleanup.cpp): they wait in state
    // cleanup until the worker is back (it kills what its previous run left
    // before it attaches) or its lost_build_grace passes; then they end
    // retry (or cancelled, if that was asked meanwhile).
    void hold_for_cleanup(Worker& w, const std::string& reason);
    void end_cleanup(Worker& w, const std::string& why);
    static int on_cleanup_timer(sd_event_source* s, uint64_t usec, void* userdata);

    sd_event* event_;
    sd_bus* bus_;
    const config::Config& config_;
    Store* store_;
    WorkerRegistry& workers_;
    BuildQueue& builds_;
    BuildLifecycle& build_lifecycle_;
    Metrics& metrics_;
    BusChanges& changes_;
    StoreTrouble& trouble_;
    LatentControl* latent_;
};

}  // namespace by::master
