// Which of a remote worker's masters (master = A, B, C) to try next, and
// when: the decision RemoteLink makes after each failed attempt or lost
// link, free of I/O, with the time passed in.
//
// The worker starts with the first master and goes round the list from
// the one after the master that failed, so that it never returns to a
// master it left while another one keeps it (no flapping). A step to
// another master within a round waits only the first back-off step (half a
// second to a second: jitter, so that the workers a dead master dropped
// together do not all reach the next one at once); the back-off that grows
// up to reconnect_max (common/backoff.hpp) comes once per full round of
// failures, so a dead master early in the list never holds up the move to
// a live one. With a single master every failure ends a round: the waits
// are the ones a worker with one master has always had.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>

namespace by::worker {

class MasterChoice {
public:
    struct Next {
        std::size_t master = 0;  // index in the list of masters
        uint64_t at = 0;         // when to try it (the clock of `now`)
        // Every master of the round refused this worker (its password, or
        // could not prove its own): trying again would fail the same way.
        bool give_up = false;
    };

    // `count` masters (at least 1); `seed` feeds the jitter.
    MasterChoice(std::size_t count, unsigned reconnect_max, uint64_t seed);

    std::size_t count() const { return count_; }
    // The master being tried, attached, or to be tried next.
    std::size_t current() const { return current_; }
    // Full rounds of failures since the last attachment (or the start).
    unsigned rounds() const { return rounds_; }

    // current() accepted the worker: it stays there, and the back-off and
    // the round start over.
    void attached();
    // The attempt at current(), or the link to it, ended at `now`;
    // `refused`: it refused the worker. Moves current() to the next master.
    Next failed(uint64_t now, bool refused);

private:
    std::size_t count_;
    unsigned reconnect_max_;
    std::mt19937_64 random_;
    std::size_t current_ = 0;
    std::size_t failures_ = 0;  // in this round
    std::size_t refusals_ = 0;  // of them, refusals
    unsigned rounds_ = 0;
};

}  // namespace by::worker
