// The decisions of buildyard-latentd, free of I/O: which Start is admitted,
// which rows survive a restart, whose lease has run out, what is a leak.
// LatentManager applies them with the loop, the bus and the store.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"
#include "common/env_knob.hpp"
#include "latent/backend.hpp"

namespace by::latent {

enum class Phase { creating, running, stopping };
std::string_view to_string(Phase p);
std::optional<Phase> parse_phase(std::string_view s);

// One row of the starts table: one start, from before its backend creates
// anything until everything of it is removed.
struct StartRow {
    std::string start;
    std::string master;    // the owner tag at the time of the start
    std::string worker;
    std::string backend;
    Phase phase = Phase::creating;
    std::string instance;  // the backend's id, once created
    uint64_t created_at = 0;     // realtime usec
    uint64_t lease_expires = 0;  // realtime usec
    uint64_t running_at = 0;     // realtime usec when the creation answered; 0 before

    friend bool operator==(const StartRow&, const StartRow&) = default;
};

// 32 lowercase hex digits, as the master makes them.
bool valid_start_id(std::string_view s);

// now + lease, saturating instead of wrapping.
uint64_t lease_deadline(uint64_t now, uint64_t lease_usec);

// The shutdown grace of a worker: BACKEND.shutdown_timeout seconds, 60 if unset.
uint64_t shutdown_grace_usec(const config::Worker& w);

// The outcome of a request: ok, or a named D-Bus error with a message.
struct Verdict {
    const char* error = nullptr;  // org.buildyard.Error.*; nullptr: ok
    std::string message;
    explicit operator bool() const { return error == nullptr; }
};

// Whether Start(worker, start, token, lease) may go ahead. `live` maps the
// live starts to their workers.
Verdict admit_start(const config::Config& cfg, const std::string& worker, const std::string& start,
                    const std::string& token, uint64_t lease_usec, const std::map<std::string, std::string>& live);

// What to do with the rows a previous latentd left.
struct Recovery {
    std::vector<StartRow> adopt;    // running, lease still valid: live again
    std::vector<StartRow> expired;  // running, lease gone: stop as a lease expiry
    std::vector<StartRow> dead;     // creating or stopping: not live; the reaper removes what they made
    std::vector<StartRow> orphans;  // their worker is no longer a latent worker of the config
};
Recovery plan_recovery(const std::vector<StartRow>& rows, const config::Config& cfg, uint64_t now);

// The running starts whose lease is over at `now`.
std::vector<std::string> expired_leases(const std::vector<StartRow>& rows, uint64_t now);

// The things of `found` to remove: those whose start was neither live when
// the listing began nor is live now (a start that ended meanwhile is being
// removed by its own stop), each once. Instances come before overlays, so
// nothing is deleted from under a running domain.
std::vector<Found> leaks(const std::vector<Found>& found, const std::set<std::string>& live_at_list,
                         const std::function<bool(const std::string&)>& live_now);

// How many latent workers `cfg` has.
size_t count_latent_workers(const config::Config& cfg);

// The latent workers of `cfg`, by backend name.
std::map<std::string, std::vector<const config::Worker*>> latent_workers_by_backend(const config::Config& cfg);

// Deadlines and intervals, in microseconds: those of [latentd] in the
// config, and fixed ones.
struct Timing {
    explicit Timing(const config::Latentd& l = {}, uint64_t test_create_delay = 0);

    uint64_t create;                      // [latentd] create_timeout
    uint64_t destroy;                     // [latentd] destroy_timeout, on top of the shutdown grace
    uint64_t call = 60'000'000;           // list and check
    uint64_t health_interval;             // [latentd] health_interval
    // A young instance (running for less than young_age) is checked every
    // young_interval: a machine that dies before its worker attaches must
    // fail the start at once, not after the master's timeout.
    uint64_t young_interval = 1'000'000;
    uint64_t young_age = 120'000'000;
    uint64_t reap_interval;               // [latentd] reap_interval
    uint64_t lease_check_interval;        // [latentd] lease_check_interval
    // For tests only (BUILDYARD_LATENT_TEST_CREATE_DELAY): how long a
    // creation waits, once the backend made it, before it reports back.
    uint64_t test_create_delay;
};

// "1.5" -> 1500000. nullopt if not a non-negative number of seconds.
inline std::optional<uint64_t> parse_seconds(std::string_view text) { return parse_usec(text, {.zero_ok = true}); }

}  // namespace by::latent
