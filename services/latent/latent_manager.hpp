// buildyard-latentd's state and what happens to it: the live starts, their
// creation and destruction through the backends (each call on a thread of
// its own, with a deadline), leases, health checks and the reaper. The
// decisions themselves are in latent_rules.*; latent_bus.cpp is the D-Bus
// face, latent_reconcile.cpp the reaper.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/config.hpp"
#include "common/raii.hpp"
#include "common/text.hpp"
#include "latent/backend.hpp"
#include "latent/backend_call.hpp"
#include "latent/latent_rules.hpp"
#include "latent/latent_store.hpp"

namespace by::latent {

// Why a live instance is being destroyed.
enum class StopCause { stop, stop_all, failed_create, lease, health };

struct Instance {
    StartRow row;
    // The worker's config as it was when the start began or was adopted: a
    // reload that changes or removes the worker does not strand its instance.
    std::shared_ptr<const config::Worker> worker;
    std::shared_ptr<Backend> backend;
    // Left in creating or stopping by a latentd that died: not live, shown as
    // stopping and keeping its worker busy until the reaper's pass is over.
    bool dead = false;
    uint64_t lease_usec = 0;          // granted from the moment it runs
    MessagePtr start_call;            // Start() waiting for the creation
    bool stop_requested = false;      // a stop came while creating
    std::vector<MessagePtr> stop_calls;  // Stop() waiting for the end
    StopCause cause = StopCause::stop;
    std::string gone_reason;          // InstanceGone's reason and log tail
    std::string log_tail;
    bool check_in_flight = false;
    uint64_t last_check = 0;          // CLOCK_MONOTONIC usec of the last health check

    Tag tag() const { return Tag{row.master, row.worker, row.start}; }
};

class LatentManager {
public:
    // `test_create_delay`: see Timing; the rest of the timing is [latentd].
    LatentManager(sd_event* event, sd_bus* bus, std::string config_path, std::string state_directory,
                  uint64_t test_create_delay);
    LatentManager(const LatentManager&) = delete;
    LatentManager& operator=(const LatentManager&) = delete;
    ~LatentManager();

    // Loads the config, locks the state directory, takes the bus name, and
    // recovers the rows a previous latentd left. `ready` runs once the first
    // reconciliation is over. False with `error` set on failure.
    bool start(std::string& error, std::function<void()> ready);

    // The Latent1 methods (latent_bus.cpp). Each answers `m` now or later and
    // returns what a vtable handler returns.
    int start_instance(sd_bus_message* m, const std::string& worker, const std::string& start,
                       const std::string& master_address, const StartSecrets& secrets, uint64_t lease_usec,
                       sd_bus_error* e);
    int stop_instance(sd_bus_message* m, const std::string& worker, const std::string& start, sd_bus_error* e);
    Verdict renew_lease(const std::string& start, uint64_t lease_usec);
    int stop_all(sd_bus_message* m);
    int reap(sd_bus_message* m);
    Verdict reload();

    // Every row, the dead ones as stopping, oldest first.
    std::vector<StartRow> instances() const;
    const std::string& master_name() const { return config_.master.name; }
    unsigned live_instances() const;
    uint64_t reaped_leaks() const { return reaped_leaks_; }
    uint64_t last_reaped_at() const { return last_reaped_at_; }

private:
    // One pass of the reaper (latent_reconcile.cpp).
    struct Removal {
        Found found;
        std::shared_ptr<const config::Worker> worker;
        std::shared_ptr<Backend> backend;
    };
    struct Pass {
        std::set<std::string> live_at_list;
        std::vector<std::string> dead;  // dead starts when the pass began
        unsigned lists_pending = 0;
        std::vector<Removal> removals;
        size_t next = 0;
        uint64_t reaped = 0;
        std::vector<MessagePtr> callers;  // Reap() calls this pass answers
    };
    struct StopAllWait {
        MessagePtr call;
        std::set<std::string> pending;
        std::vector<std::string> failures;
    };

    Instance* find(const std::string& start);
    bool is_live(const std::string& start) const;
    std::shared_ptr<Backend> backend_for(const std::string& name);
    void adopt(const StartRow& row, bool dead);

    void on_created(const std::string& start, Outcome<std::string> result);
    void on_create_expired(const std::string& start);
    void begin_destroy(Instance& inst, StopCause cause, std::string reason = {}, std::string log_tail = {});
    // The instance is gone (or given up on): row deleted, callers answered,
    // InstanceGone sent if nobody asked for it. `error` null: success.
    void finish(const std::string& start, const char* error, const std::string& message);

    void check_leases();
    void check_health();
    static int on_lease_timer(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_health_timer(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_reap_timer(sd_event_source* s, uint64_t usec, void* userdata);
    int add_timer(SourcePtr& out, uint64_t interval, sd_event_time_handler_t handler);
    static void rearm(sd_event_source* s, uint64_t interval);

    void request_reap(MessagePtr caller = {});
    void begin_pass(std::vector<MessagePtr> callers);
    void on_listed(const std::string& backend, Outcome<std::vector<Found>> result,
                   const std::vector<std::shared_ptr<const config::Worker>>& workers,
                   const std::shared_ptr<Backend>& b);
    void list_done();
    void remove_next();
    void end_pass();

    // PropertiesChanged and STATUS=, once per loop iteration.
    void changed();
    static int on_changed_deferred(sd_event_source* s, void* userdata);

    sd_event* event_;
    sd_bus* bus_;
    std::string config_path_;
    std::string state_directory_;
    Timing timing_;                   // config_'s [latentd]
    config::Config config_;
    Fd state_lock_;
    LatentStore store_;
    CallRunner calls_;
    std::map<std::string, std::shared_ptr<Backend>> backends_;
    std::map<std::string, std::unique_ptr<Instance>> instances_;  // by start
    std::vector<StopAllWait> stop_all_waits_;
    std::optional<Pass> pass_;
    bool pass_requested_ = false;
    std::vector<MessagePtr> reap_callers_next_;
    std::function<void()> ready_;
    bool is_ready_ = false;
    uint64_t reaped_leaks_ = 0;
    uint64_t last_reaped_at_ = 0;
    SlotPtr slot_;
    SourcePtr changed_source_;
    SourcePtr lease_timer_;
    SourcePtr health_timer_;
    SourcePtr reap_timer_;
};

// config::load for latentd: it needs no secrets (passwords are the master's
// business), so it reads none and cannot fail on a file it may not read.
config::LoadResult load_config(const std::string& path);

// A method call kept for a later answer.
inline MessagePtr keep(sd_bus_message* m) { return MessagePtr(sd_bus_message_ref(m)); }
inline void reply_error(const MessagePtr& m, const char* name, const std::string& message) {
    sd_bus_reply_method_errorf(m.get(), name, "%s", text::to_utf8(message).c_str());
}

// Registers /org/buildyard/Latent1 (latent_bus.cpp).
int register_latent_object(LatentManager& m, sd_bus* bus, SlotPtr& slot);
// Sends InstanceGone.
int emit_instance_gone(sd_bus* bus, const std::string& worker, const std::string& start, const std::string& reason,
                       const std::string& log_tail);

}  // namespace by::latent
