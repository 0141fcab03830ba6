// The master's config after all files are merged, section by section, and
// the step that gives the keys their meaning. Internal to services/common.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/config.hpp"

namespace by::config::detail {

struct Value {
    std::string text;
    Origin origin;   // the line that set it last
    std::size_t sequence = 0;   // grows with every setting read, across files
};

// One section after merging: a later file's value wins for each key.
struct Section {
    std::string label;   // "worker bot1", "mail": the section in error messages
    std::string name;    // worker or builder name; empty for [master], [mail] and [latentd]
    Origin origin;       // the first header
    std::map<std::string, Value> values;

    const Value* get(const std::string& key) const {
        const auto it = values.find(key);
        return it == values.end() ? nullptr : &it->second;
    }
};

struct Sections {
    std::optional<Section> master;
    std::optional<Section> mail;
    std::optional<Section> latentd;
    std::map<std::string, Section> workers;
    std::map<std::string, Section> builders;
};

// Fills `config` from the merged sections, appending every mistake to
// `errors`. Cross-references (builder -> worker, mail -> builder) are
// checked here, after all files were read.
void interpret(const Sections& sections, const Environment& env, Config& config, std::vector<Error>& errors);

}  // namespace by::config::detail
