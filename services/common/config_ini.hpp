// Reads one INI file with inih into sections and settings with line numbers.
// Only syntax is checked here; what the sections and keys mean is up to the
// caller. Internal to services/common.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/config.hpp"

namespace by::config::detail {

struct IniSetting {
    std::string key;
    std::string value;
    int line = 0;
};

struct IniSection {
    std::string header;   // text between the brackets, trimmed
    int line = 0;         // line of the header; 0 for the settings before any header
    std::vector<IniSetting> settings;
};

struct IniFile {
    std::string path;
    // sections[0] holds the settings before the first header (line 0); then
    // one entry per header, in file order (a repeated header appears twice).
    std::vector<IniSection> sections;
};

// Reads and parses `path`. Syntax errors are appended to `errors`, and the
// lines they concern are left out of the result. Returns nullopt (with an
// error at line 0) when the file cannot be read.
std::optional<IniFile> read_ini(const std::string& path, std::vector<Error>& errors);

}  // namespace by::config::detail
