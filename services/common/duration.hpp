// A duration as people read it, for logs and buildyardctl.
#pragma once

#include <cstdint>
#include <string>

namespace by {

// "0.25 s", "12.5 s", "3 min 05 s", "2 h 03 min".
std::string format_duration(uint64_t usec);

}  // namespace by
