#include "common/config_backend_keys.hpp"

#include "common/config_values.hpp"

namespace by::config::detail {

std::string quoted(const std::string& v) { return "'" + v + "'"; }

std::optional<std::string> parse_size_gib(const std::string& v, uint64_t max_gib, uint64_t& out) {
    const auto gib = parse_uint(v, max_gib);
    if (!gib || *gib == 0) {
        return "invalid value " + quoted(v) + ": expected GiB from 1 to " + std::to_string(max_gib);
    }
    out = *gib;
    return std::nullopt;
}

std::optional<std::string> parse_credential_name(const std::string& v, std::string& out) {
    if (auto problem = credential_name_problem(v)) {
        return problem;
    }
    out = v;
    return std::nullopt;
}

}  // namespace by::config::detail
