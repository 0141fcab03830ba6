// The step that gives the merged sections' keys their meaning: one method
// per section, and the helpers that report a mistake at the line that set
// it. Internal to services/common: the master-wide sections are read in
// config_sections.cpp, [worker NAME] and [builder NAME] in
// config_worker_sections.cpp.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config_sections.hpp"
#include "common/config_values.hpp"
#include "common/env_knob.hpp"

namespace by::config::detail {

inline std::string in_quotes(std::string_view text) {
    return "'" + std::string(text) + "'";
}

class Interpreter {
public:
    Interpreter(const Sections& sections, const Environment& env, Config& config, std::vector<Error>& errors)
        : sections_(sections), env_(env), config_(config), errors_(errors) {}

    void run();

private:
    // An error about the value of `key`, at the line that set it.
    void bad(const Section& s, const std::string& key, std::string message) {
        const Origin& at = s.values.at(key).origin;
        errors_.push_back({at.file, at.line, s.label, key, std::move(message)});
    }

    // An error about the section as a whole, at its (first) header.
    void bad_section(const Section& s, std::string message) {
        errors_.push_back({s.origin.file, s.origin.line, s.label, "", std::move(message)});
    }

    // Not an error: the setting loads, but probably does not work.
    void warn_section(const Section& s, const std::string& key, std::string message) {
        config_.warnings.push_back({s.origin.file, s.origin.line, s.label, key, std::move(message)});
    }

    void unknown(const Section& s, const std::string& key) {
        bad(s, key, "unknown key");
    }

    // A comma list whose entries must pass `valid`; reports empty and
    // invalid entries and returns the valid ones.
    template <class Valid>
    std::vector<std::string> list(const Section& s, const std::string& key, Valid valid, const std::string& what) {
        std::vector<std::string> out;
        for (auto& entry : split_list(s.values.at(key).text)) {
            if (entry.empty()) {
                bad(s, key, "empty entry in list");
            } else if (!valid(entry)) {
                bad(s, key, "invalid " + what + " " + in_quotes(entry));
            } else {
                out.push_back(std::move(entry));
            }
        }
        return out;
    }

    std::vector<std::string> addresses(const Section& s, const std::string& key) {
        return list(s, key, [](const std::string& a) { return valid_address(a); }, "address");
    }

    // The keys of `s` that are set, in the order they were read.
    static std::vector<std::string> present(const Section& s, std::initializer_list<const char*> keys) {
        std::vector<std::string> out;
        for (const char* key : keys) {
            if (s.get(key)) {
                out.push_back(key);
            }
        }
        std::sort(out.begin(), out.end(), [&](const std::string& a, const std::string& b) {
            return s.values.at(a).sequence < s.values.at(b).sequence;
        });
        return out;
    }

    std::optional<uint64_t> seconds(const Section& s, const std::string& key, uint64_t min, const std::string& hint) {
        const auto& text = s.values.at(key).text;
        const auto value = parse_uint(text, max_seconds);
        if (!value || *value < min) {
            bad(s, key, "invalid value " + in_quotes(text) + ": expected " + hint);
            return std::nullopt;
        }
        return value;
    }

    // A duration in seconds, fractions allowed ("0.5"), into `field` in
    // microseconds; a bad value leaves `field` alone.
    void duration(const Section& s, const std::string& key, uint64_t& field, const UsecKnob& knob = {}) {
        const auto& text = s.values.at(key).text;
        if (const auto usec = parse_usec(text, knob)) {
            field = *usec;
        } else {
            bad(s, key, "invalid value " + in_quotes(text) + ": expected " + describe(knob));
        }
    }

    // [master], [mail] and [latentd]: config_sections.cpp.
    void master();
    void master_credentials();
    void mail();
    void latentd();
    void mail_builders();

    // [worker NAME] and [builder NAME]: config_worker_sections.cpp.
    static std::optional<std::string> property_clash(const Section& s, const std::string& key,
                                                     const std::string& name,
                                                     std::map<std::string, std::string>& env_names);
    void worker(const Section& s);
    void worker_password(const Section& s, Worker& w, const std::vector<std::string>& keys);
    void builder(const Section& s);

    const Sections& sections_;
    const Environment& env_;
    Config& config_;
    std::vector<Error>& errors_;
};

}  // namespace by::config::detail
