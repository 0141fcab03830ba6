// When a missing worker is due a mail. A worker's absence starts when it
// detaches (or, if it never attached, when the master first saw it in its
// configuration); each absence is one "loss", named by the time it began,
// and gets at most one mail. Plain logic with an injected clock: no bus,
// loop or database. The master keeps the facts here in step with its
// workers and wakes up at next_deadline().
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace by::master {

class MissingTracker {
public:
    // Microseconds since the epoch, like every timestamp of the master.
    using Clock = std::function<uint64_t()>;

    explicit MissingTracker(Clock clock) : clock_(std::move(clock)) {}

    // Adds a worker, or changes its settings (on reload). timeout_usec 0
    // disables its mail; so does `notify` false (no addresses).
    void configure(const std::string& name, uint64_t timeout_usec, bool notify);
    void forget(const std::string& name);
    bool tracks(const std::string& name) const { return workers_.count(name) != 0; }

    // The worker is attached: no absence, nothing due.
    void attached(const std::string& name);
    // The worker is away since `since`. Calling it again with the same
    // time changes nothing; a different time is a new loss. `at_once`: the
    // mail is due now, not after the timeout (a latent worker whose machine
    // failed to start); it may turn true later in the same loss.
    void absent(const std::string& name, uint64_t since, bool at_once = false);

    // The loss that starts at `loss` has had its mail (read back from the
    // database at start, or just queued).
    void set_notified_loss(const std::string& name, uint64_t loss);
    // The current loss has had its mail.
    void mark_notified(const std::string& name);
    // Not before `until`, e.g. after the mail could not be queued.
    void postpone(const std::string& name, uint64_t until);

    // Workers whose mail is due now, by name.
    std::vector<std::string> due() const;
    // When the next mail falls due, if any is pending (may be in the past).
    std::optional<uint64_t> next_deadline() const;

    // When the current absence began; 0 while attached or unknown.
    uint64_t missing_since(const std::string& name) const;
    // Whether the current absence has had its mail.
    bool notified(const std::string& name) const;

private:
    struct Entry {
        uint64_t timeout = 0;        // usec; 0: disabled
        bool notify = false;
        uint64_t since = 0;          // 0: attached
        uint64_t notified_loss = 0;  // the `since` whose mail went out
        uint64_t not_before = 0;
        bool at_once = false;
    };
    // The time the entry's mail falls due; nullopt if it never will.
    static std::optional<uint64_t> deadline(const Entry& e);

    Clock clock_;
    std::map<std::string, Entry> workers_;
};

}  // namespace by::master
