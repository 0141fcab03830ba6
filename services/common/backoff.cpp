#include "common/backoff.hpp"

#include <algorithm>

namespace by {

uint64_t reconnect_delay_usec(unsigned attempt, unsigned max_seconds, std::mt19937_64& random) {
    const uint64_t cap = std::max(1u, max_seconds) * 1'000'000ull;
    const uint64_t full = attempt >= 40 ? cap : std::min<uint64_t>(cap, (uint64_t{1} << attempt) * 1'000'000);
    std::uniform_int_distribution<uint64_t> pick(full / 2, full);
    return pick(random);
}

}  // namespace by
