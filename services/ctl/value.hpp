// D-Bus property values as buildyardctl holds them after decoding a GetAll
// reply, and their JSON form. Pure code, no bus.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace by::ctl {

using StringMap = std::map<std::string, std::string>;

// monostate: a type buildyardctl does not decode (left out of JSON).
// Signed integers (n, i, x) become int64_t, unsigned ones (y, q, u, t) uint64_t,
// s/o/g std::string.
using Value = std::variant<std::monostate, bool, int64_t, uint64_t, double, std::string,
                           std::vector<std::string>, StringMap>;

// Property name -> value, as GetAll returns them.
using PropertyMap = std::map<std::string, Value>;

// Typed look-ups: the fallback when the property is missing or of another type.
std::string prop_string(const PropertyMap& props, const std::string& name,
                        const std::string& fallback = {});
uint64_t prop_uint(const PropertyMap& props, const std::string& name, uint64_t fallback = 0);
bool prop_bool(const PropertyMap& props, const std::string& name, bool fallback = false);
StringMap prop_map(const PropertyMap& props, const std::string& name);

// "LastConnected" -> "last_connected", "MaxBuilds" -> "max_builds".
std::string snake_case(std::string_view name);

nlohmann::json to_json(const Value& value);

// One JSON object with every decodable property, keys in snake_case.
nlohmann::json to_json(const PropertyMap& props);

// The one JSON document a command prints (indented, invalid UTF-8 replaced).
std::string dump_json(const nlohmann::json& document);

}  // namespace by::ctl
