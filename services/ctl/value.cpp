#include "ctl/value.hpp"

#include <cctype>

#include "common/text.hpp"

namespace by::ctl {

std::string prop_string(const PropertyMap& props, const std::string& name,
                        const std::string& fallback) {
    auto it = props.find(name);
    if (it == props.end()) {
        return fallback;
    }
    if (const auto* s = std::get_if<std::string>(&it->second)) {
        return *s;
    }
    return fallback;
}

uint64_t prop_uint(const PropertyMap& props, const std::string& name, uint64_t fallback) {
    auto it = props.find(name);
    if (it == props.end()) {
        return fallback;
    }
    if (const auto* u = std::get_if<uint64_t>(&it->second)) {
        return *u;
    }
    if (const auto* i = std::get_if<int64_t>(&it->second); i && *i >= 0) {
        return static_cast<uint64_t>(*i);
    }
    return fallback;
}

bool prop_bool(const PropertyMap& props, const std::string& name, bool fallback) {
    auto it = props.find(name);
    if (it == props.end()) {
        return fallback;
    }
    if (const auto* b = std::get_if<bool>(&it->second)) {
        return *b;
    }
    return fallback;
}

StringMap prop_map(const PropertyMap& props, const std::string& name) {
    auto it = props.find(name);
    if (it == props.end()) {
        return {};
    }
    if (const auto* m = std::get_if<StringMap>(&it->second)) {
        return *m;
    }
    return {};
}

std::string snake_case(std::string_view name) {
    std::string out;
    out.reserve(name.size() + 4);
    for (std::size_t i = 0; i < name.size(); ++i) {
        auto c = static_cast<unsigned char>(name[i]);
        if (std::isupper(c)) {
            // A new word starts at an upper-case letter that follows a lower-case
            // letter or digit, or that starts a word after an acronym ("HTTPPort").
            bool after_lower = i > 0 && (std::islower(static_cast<unsigned char>(name[i - 1])) ||
                                         std::isdigit(static_cast<unsigned char>(name[i - 1])));
            bool acronym_end = i > 0 && std::isupper(static_cast<unsigned char>(name[i - 1])) &&
                               i + 1 < name.size() &&
                               std::islower(static_cast<unsigned char>(name[i + 1]));
            if ((after_lower || acronym_end) && !out.empty() && out.back() != '_') {
                out.push_back('_');
            }
            out.push_back(static_cast<char>(std::tolower(c)));
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    return out;
}

nlohmann::json to_json(const Value& value) {
    struct Visitor {
        nlohmann::json operator()(std::monostate) const { return nullptr; }
        nlohmann::json operator()(bool b) const { return b; }
        nlohmann::json operator()(int64_t i) const { return i; }
        nlohmann::json operator()(uint64_t u) const { return u; }
        nlohmann::json operator()(double d) const { return d; }
        nlohmann::json operator()(const std::string& s) const { return s; }
        nlohmann::json operator()(const std::vector<std::string>& v) const {
            return nlohmann::json(v);
        }
        nlohmann::json operator()(const StringMap& m) const {
            nlohmann::json j = nlohmann::json::object();
            for (const auto& [k, v] : m) {
                j[k] = v;
            }
            return j;
        }
    };
    return std::visit(Visitor{}, value);
}

nlohmann::json to_json(const PropertyMap& props) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [name, value] : props) {
        if (std::holds_alternative<std::monostate>(value)) {
            continue;
        }
        j[snake_case(name)] = to_json(value);
    }
    return j;
}

std::string dump_json(const nlohmann::json& document) {
    return text::json_dump(document, 2);
}

}  // namespace by::ctl
