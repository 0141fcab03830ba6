// Latent workers, the master's side: each latent worker's LatentMachine
// (latent_state.*) wrapped in a timer, its effects carried out (latent.cpp),
// and the calls to buildyard-latentd (org.buildyard.Latent1) that start,
// stop and renew its machine (latent_calls.cpp), each with a deadline, so a
// latentd that hangs or is gone never wedges the master. What it needs of
// the master is LatentHost (latent_host.hpp).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "common/log.hpp"
#include "common/raii.hpp"
#include "master/latent_host.hpp"
#include "master/latent_state.hpp"

namespace by::master {

class LatentControl;
class Store;
struct Worker;

// What the master keeps per latent worker, beside the machine.
struct LatentSide {
    LatentMachine machine;
    std::string start;                     // the current start's id; empty before the first
    std::string token;                     // its one-time token
    std::deque<std::string> earlier_tokens;  // of the last few starts, to name a stale one in the log
    std::string instance;                  // latentd's name for the machine
    std::string log_tail;                  // from InstanceGone, for the failed builds' logs
    SourcePtr timer;                       // at machine.next_deadline()
    LatentControl* control = nullptr;      // its owner, for the timer
    LatentMachine::Record saved;           // what state.db holds of it
};

class LatentControl {
public:
    struct Timeouts {
        uint64_t lease_usec = 300'000'000;        // [master] latent_lease, renewed every third of it
        uint64_t stop_call_usec = 600'000'000;    // latentd's own shutdown grace and destroy fit in it
        uint64_t renew_call_usec = 30'000'000;
        uint64_t stop_all_usec = 600'000'000;
    };

    LatentControl(LatentHost& host, Store& store, Metrics& metrics, sd_event* event, sd_bus* bus,
                  Timeouts timeouts);
    LatentControl(const LatentControl&) = delete;
    LatentControl& operator=(const LatentControl&) = delete;
    ~LatentControl();

    // Listens for InstanceGone, and, if latent workers are configured, asks
    // latentd to stop whatever an earlier master left running: no start
    // happens before that is answered. Negative errno.
    int start();
    // The config was loaded or reloaded: each latent worker's settings.
    void reconfigure();
    // [master] latent_lease: for the starts and renewals from now on.
    void set_lease(uint64_t lease_usec) { timeouts_.lease_usec = lease_usec; }
    // The master stops: every machine of ours goes (fire and forget; the
    // leases cover a latentd that is not there to hear it).
    void master_stopping();

    // Whether a build may be handed to `w` now (which may start its machine).
    bool accepts_builds(const Worker& w) const;
    // The token a worker attaching as `w` must prove now (nullptr: none).
    const std::string* current_token(const Worker& w) const;

    // Events from the master.
    void build_assigned(Worker& w);
    void builds_changed(Worker& w);
    void attached(Worker& w);
    void detached(Worker& w);
    // The worker leaves the configuration: its machine goes too.
    void forget(Worker& w);
    // Worker1.Shutdown. False if there is nothing to stop.
    bool shutdown(Worker& w, bool graceful);

private:
    // One call to latentd awaiting its reply; the slot cancels it if we go first.
    struct Call {
        LatentControl* control = nullptr;
        uint64_t id = 0;
        std::string worker;
        std::string start;
        SlotPtr slot;
    };

    static constexpr uint64_t usec_per_sec = 1'000'000;

    static bool is_latent(const Worker& w);
    static void log_worker(log::Level level, const std::string& worker, const std::string& message);
    void apply(Worker& w, LatentState before, const LatentEffects& fx);
    void send_start(Worker& w);
    void send_stop(Worker& w, const std::string& start);
    // Stops the machine of a worker that stops being latent (it left the
    // configuration, or its type changed); nobody waits for the answer.
    void stop_departing(Worker& w, const std::string& why);
    // Writes the machine's failure streak to state.db when it changed.
    void persist(Worker& w);
    void send_renewals();
    void rearm(Worker& w);
    int call(const char* member, uint64_t timeout, const std::string& worker, const std::string& start,
             sd_bus_message_handler_t handler, const char* types, ...);
    uint64_t now() const;

    static int on_timer(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_renew_timer(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_start_reply(sd_bus_message* m, void* userdata, sd_bus_error* e);
    static int on_stop_reply(sd_bus_message* m, void* userdata, sd_bus_error* e);
    static int on_renew_reply(sd_bus_message* m, void* userdata, sd_bus_error* e);
    static int on_stop_all_reply(sd_bus_message* m, void* userdata, sd_bus_error* e);
    static int on_instance_gone(sd_bus_message* m, void* userdata, sd_bus_error* e);

    LatentHost& host_;
    Store& store_;
    Metrics& metrics_;
    sd_event* event_;
    sd_bus* bus_;
    Timeouts timeouts_;
    bool ready_ = true;  // false until StopAll at start-up is answered
    uint64_t next_call_ = 1;
    std::map<uint64_t, std::unique_ptr<Call>> calls_;
    SlotPtr gone_match_;
    SlotPtr stop_all_;
    SourcePtr renew_timer_;
};

}  // namespace by::master
