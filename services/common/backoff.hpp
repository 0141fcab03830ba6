// How long a remote worker waits before connecting again to its master,
// shared by buildyard-workerd and the test tools that stand in for many
// workers (so that a benchmark measures the real policy).
#pragma once

#include <cstdint>
#include <random>

namespace by {

// The delay before reconnect attempt `attempt` (0-based after a loss):
// 1 s doubling up to `max_seconds` (at least 1), then a random point in its
// upper half, so that workers a restarting master dropped together do not
// return together.
uint64_t reconnect_delay_usec(unsigned attempt, unsigned max_seconds, std::mt19937_64& random);

}  // namespace by
