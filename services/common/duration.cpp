#include "common/duration.hpp"

#include <fmt/format.h>

namespace by {

std::string format_duration(uint64_t usec) {
    const double seconds = static_cast<double>(usec) / 1e6;
    if (seconds < 10) {
        return fmt::format("{:.2f} s", seconds);
    }
    if (seconds < 60) {
        return fmt::format("{:.1f} s", seconds);
    }
    const uint64_t whole = usec / 1000000;
    if (whole < 3600) {
        return fmt::format("{} min {:02} s", whole / 60, whole % 60);
    }
    return fmt::format("{} h {:02} min", whole / 3600, whole % 3600 / 60);
}

}  // namespace by
