// How long the things a bus caller names may be (buildyard-dbus(7), LIMITS).
// Checked before anything is logged or stored; over a limit is
// org.buildyard.Error.InvalidArgument.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace by::limits {

inline constexpr std::size_t name = 64;              // worker and builder names (as in the config)
inline constexpr std::size_t reason = 1024;          // pause, detach and stop reasons, results
inline constexpr std::size_t token = 256;            // latentd: start ids, addresses, tokens
inline constexpr std::size_t property_key = 128;
inline constexpr std::size_t property_value = 16384;
inline constexpr std::size_t properties = 128;       // entries of one a{ss} argument

// nullopt when `value` fits in `max` bytes, else the error message, which
// names `what` and the limit (never the value itself).
std::optional<std::string> check(std::string_view what, std::string_view value, std::size_t max);
// Properties and worker info: the number of entries, each key, each value.
std::optional<std::string> check_map(std::string_view what, const std::map<std::string, std::string>& map);

}  // namespace by::limits
