// Many deadlines behind one loop timer: each key (a connection) has at most
// one, and the earliest ones are taken together when the timer fires. A
// keepalive round of N workers then costs the loop a few wake-ups instead
// of N timer sources, each with its own dispatch (remote_keepalive.cpp).
// Pure: the caller owns the timer and says what time it is.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

namespace by::master {

class DeadlineQueue {
public:
    // `key` is due at `at`, in place of any deadline it had.
    void set(uint64_t key, uint64_t at);
    // `key` has no deadline any more (if it had one).
    void cancel(uint64_t key);
    bool has(uint64_t key) const { return at_.count(key) > 0; }
    size_t size() const { return at_.size(); }
    // The earliest deadline, if any.
    std::optional<uint64_t> next() const;
    // The keys due at `now` (deadline <= now), earliest first; they have
    // no deadline after this.
    std::vector<uint64_t> take_due(uint64_t now);

private:
    std::set<std::pair<uint64_t, uint64_t>> order_;  // (at, key)
    std::unordered_map<uint64_t, uint64_t> at_;       // key -> at
};

}  // namespace by::master
