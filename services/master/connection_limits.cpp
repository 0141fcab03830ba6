#include "master/connection_limits.hpp"

#include <algorithm>

namespace by::master {

size_t ConnectionLimits::for_descriptors(uint64_t nofile) {
    if (nofile <= reserve) {
        return 0;
    }
    return static_cast<size_t>(std::min<uint64_t>(max_connections, (nofile - reserve) / descriptors_per_connection));
}

ConnectionLimits::Verdict ConnectionLimits::admit(size_t open, size_t limit, size_t unauthenticated_from_address) {
    if (open >= limit) {
        return Verdict::full;
    }
    if (unauthenticated_from_address >= max_unauthenticated_per_address) {
        return Verdict::address_full;
    }
    return Verdict::accept;
}

}  // namespace by::master
