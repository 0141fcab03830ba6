// The state machine of one latent worker, free of I/O: the master feeds it
// events with the time, and carries out the Effects it returns (starting
// and stopping the machine through buildyard-latentd, rerunning the builds
// that waited for it) and wakes it at next_deadline(). Every transition
// goes through one function, so each is logged once (by the caller, from
// the returned Effects) and shows in Worker1.State.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace by::master {

enum class LatentState { offline, substantiating, idle, building, insubstantiating };
std::string_view to_string(LatentState s);

struct LatentSettings {
    // 0: stop when the last build ends; negative: never stop (a master
    // shutdown still does).
    int64_t build_wait_timeout = 600;      // seconds
    // How long a start may take until the worker attaches, and how long an
    // attached worker may stay away before its machine is given up.
    uint64_t substantiation_timeout = 3600;  // seconds
};

// What the caller must do after an event. More than one may be set.
struct LatentEffects {
    bool start = false;               // ask latentd for a new machine (a new start)
    bool stop = false;                // ask latentd to stop the current start
    bool fail_waiting_builds = false;  // the builds held for the machine end retry
    bool drop_link = false;           // detach the worker (its machine is gone)
    bool changed = false;             // the state or the quarantine changed
    std::string why;                  // for the log (and the failed builds' logs)
};

class LatentMachine {
public:
    // Quarantine after failed starts: 10 s, doubling with each further
    // failure, at most an hour. A start that attaches resets it.
    static constexpr uint64_t first_backoff = 10'000'000;
    static constexpr uint64_t max_backoff = 3'600'000'000;

    explicit LatentMachine(LatentSettings settings = {}) : settings_(settings) {}

    // What must outlive the master: the failure streak, its quarantine and
    // when the trouble began, so that a restart neither retries a
    // quarantined machine at once nor mails the same trouble again.
    struct Record {
        unsigned failures = 0;
        uint64_t quarantine_until = 0;
        std::string last_error;
        uint64_t trouble_since = 0;
        bool operator==(const Record&) const = default;
    };
    Record record() const { return {failures_, quarantine_until_, last_error_, trouble_since_}; }
    // Takes a record back at master start, while the machine is offline.
    void restore(const Record& r);

    LatentState state() const { return state_; }
    // A reload may change the settings; they apply from the next event.
    void configure(LatentSettings settings) { settings_ = settings; }
    const LatentSettings& settings() const { return settings_; }

    // Whether a build may be handed to this worker now: it runs (idle or
    // building), is on its way (substantiating), or may be started (offline
    // and out of quarantine). Not while it stops.
    bool accepts_builds(uint64_t now) const;
    bool quarantined(uint64_t now) const { return now < quarantine_until_; }
    uint64_t quarantine_until() const { return quarantine_until_; }
    unsigned failures() const { return failures_; }
    const std::string& last_error() const { return last_error_; }
    // When the current trouble began (a start that has not attached yet
    // after the machine was wanted, or an unexpected loss); 0 if none.
    // The missing-worker mail counts from here.
    uint64_t trouble_since() const { return trouble_since_; }
    // Whether the trouble is a failed start (reported at once) rather than
    // a wait that has not run out yet.
    bool start_failed() const { return failures_ > 0 && trouble_since_ != 0; }
    // Whether the current start's token is good: from the Start call (the
    // worker may attach before latentd's answer arrives) until a stop.
    bool accepts_token() const {
        return state_ == LatentState::substantiating || state_ == LatentState::idle ||
               state_ == LatentState::building;
    }

    // A build was handed to the worker (held until it attaches, if it has
    // not). `running` counts it.
    LatentEffects build_assigned(uint64_t now, unsigned running);
    // latentd answered Start.
    LatentEffects start_succeeded(uint64_t now);
    LatentEffects start_failed(uint64_t now, const std::string& error);
    // The worker of the current start attached, or detached without being asked.
    LatentEffects attached(uint64_t now, unsigned running);
    LatentEffects detached(uint64_t now);
    // Its running builds changed (one ended, one started).
    LatentEffects builds_changed(uint64_t now, unsigned running);
    // latentd reports that the instance ended on its own (died, exited,
    // lease ran out). `waiting` builds are held for the worker.
    LatentEffects instance_gone(uint64_t now, const std::string& reason, unsigned waiting);
    // latentd answered Stop (or the call failed: the machine is given up
    // either way; latentd's reaper and lease see to leftovers).
    LatentEffects stop_done(uint64_t now);
    // Worker1.Shutdown: stop the machine now, or once its builds end.
    LatentEffects shutdown(uint64_t now, bool graceful, unsigned running);
    // The time has come for next_deadline().
    LatentEffects tick(uint64_t now);

    // The earliest time tick() has something to do (a start that must
    // attach, an idle machine to stop, a quarantine that ends), if any.
    std::optional<uint64_t> next_deadline() const;

private:
    LatentEffects set_state(LatentState s, std::string why, LatentEffects fx = {});
    LatentEffects begin_start(uint64_t now, std::string why);
    // `intentional`: the master no longer wants the machine (not a failure),
    // so its absence is no trouble.
    LatentEffects begin_stop(std::string why, bool intentional, LatentEffects fx = {});
    LatentEffects fail(uint64_t now, std::string reason, bool instance_gone);
    LatentEffects now_idle(uint64_t now, unsigned running, std::string why);

    LatentSettings settings_;
    LatentState state_ = LatentState::offline;
    bool start_pending_ = false;      // Start sent, no answer yet
    bool instance_up_ = false;        // latentd has started the machine
    bool stop_when_idle_ = false;     // graceful shutdown
    bool attached_this_start_ = false;  // its worker attached since the last start
    uint64_t attach_deadline_ = 0;    // substantiating: attach by then
    uint64_t idle_deadline_ = 0;      // idle: stop then
    uint64_t quarantine_until_ = 0;
    bool quarantine_wakeup_ = false;  // tick() once the quarantine ends
    unsigned failures_ = 0;
    std::string last_error_;
    uint64_t trouble_since_ = 0;
};

}  // namespace by::master
