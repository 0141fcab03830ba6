#include "common/input_limits.hpp"

#include <fmt/format.h>

namespace by::limits {

std::optional<std::string> check(std::string_view what, std::string_view value, std::size_t max) {
    if (value.size() <= max) {
        return std::nullopt;
    }
    return fmt::format("{} is {} bytes long; the limit is {}", what, value.size(), max);
}

std::optional<std::string> check_map(std::string_view what, const std::map<std::string, std::string>& map) {
    if (map.size() > properties) {
        return fmt::format("{}: {} entries; the limit is {}", what, map.size(), properties);
    }
    for (const auto& [k, v] : map) {
        if (auto e = check(fmt::format("{}: a key", what), k, property_key)) {
            return e;
        }
        if (auto e = check(fmt::format("{}: the value of '{}'", what, k), v, property_value)) {
            return e;
        }
    }
    return std::nullopt;
}

}  // namespace by::limits
