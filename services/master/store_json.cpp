#include "master/store_json.hpp"

#include <nlohmann/json.hpp>

#include "common/text.hpp"

namespace by::master::store_json {

std::string from_map(const std::map<std::string, std::string>& m) { return text::json_dump(nlohmann::json(m)); }

std::map<std::string, std::string> to_map(const std::string& s) {
    auto j = nlohmann::json::parse(s, nullptr, false);
    std::map<std::string, std::string> m;
    if (j.is_object()) {
        for (auto& [k, v] : j.items()) {
            if (v.is_string()) {
                m[k] = v.get<std::string>();
            }
        }
    }
    return m;
}

std::string from_list(const std::vector<std::string>& v) { return text::json_dump(nlohmann::json(v)); }

std::vector<std::string> to_list(const std::string& s) {
    auto j = nlohmann::json::parse(s, nullptr, false);
    std::vector<std::string> out;
    if (j.is_array()) {
        for (const auto& v : j) {
            if (v.is_string()) {
                out.push_back(v.get<std::string>());
            }
        }
    }
    return out;
}

std::string from_usage(const BuildUsage& u) { return nlohmann::json(usage_to_map(u)).dump(); }

BuildUsage to_usage(const std::string& s) {
    auto j = nlohmann::json::parse(s, nullptr, false);
    std::map<std::string, uint64_t> m;
    if (j.is_object()) {
        for (auto& [k, v] : j.items()) {
            if (v.is_number_unsigned()) m[k] = v.get<uint64_t>();
        }
    }
    return usage_from_map(m);
}

}  // namespace by::master::store_json
