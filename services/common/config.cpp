// Which files make up the master's config and how they merge. What the keys
// mean is in config_sections.cpp and config_worker_sections.cpp, single
// values in config_values.cpp.
#include "common/config.hpp"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <system_error>

#include <unistd.h>

#include "common/config_ini.hpp"
#include "common/config_sections.hpp"
#include "common/config_values.hpp"
#include "common/text.hpp"

namespace by::config {

uint64_t lost_build_grace(const Worker& w) {
    return w.lost_build_grace < 0 ? w.keepalive_timeout : static_cast<uint64_t>(w.lost_build_grace);
}

std::string_view to_string(WorkerType t) {
    switch (t) {
    case WorkerType::standard: return "standard";
    case WorkerType::local: return "local";
    case WorkerType::latent: return "latent";
    }
    return "standard";
}

std::string Error::str() const {
    if (line == 0) {
        return file + ": " + message;
    }
    std::string out = file + ":" + std::to_string(line) + ": ";
    if (!section.empty()) {
        out += "[" + section + "]";
        if (!key.empty()) {
            out += " " + key;
        }
        out += ": ";
    } else if (!key.empty()) {
        out += key + ": ";
    }
    return out + message;
}

Environment current_environment() {
    Environment env;
    char host[HOST_NAME_MAX + 1] = {};
    if (gethostname(host, sizeof host - 1) == 0) {
        env.hostname = host;
    }
    if (const char* dir = std::getenv("CREDENTIALS_DIRECTORY")) {
        env.credentials_directory = dir;
    }
    if (const char* dir = std::getenv("STATE_DIRECTORY")) {
        // systemd lists one path per StateDirectory= entry, separated by ':'.
        const std::string all = dir;
        env.state_directory = all.substr(0, all.find(':'));
    }
    return env;
}

namespace {

using detail::IniFile;
using detail::Section;
using detail::Sections;

// Merges one file into `sections`. Within a file a repeated section or key
// is an error; across files a later file wins for each key it sets.
class FileMerger {
public:
    FileMerger(Sections& sections, std::vector<Error>& errors) : sections_(sections), errors_(errors) {}

    void merge(const IniFile& file) {
        seen_sections_.clear();
        seen_keys_.clear();
        for (const auto& ini : file.sections) {
            if (ini.line == 0) {
                for (const auto& setting : ini.settings) {
                    errors_.push_back({file.path, setting.line, "", setting.key, "not in any section"});
                }
                continue;
            }
            Section* section = open(file.path, ini.header, ini.line);
            if (!section) {
                continue;
            }
            for (const auto& setting : ini.settings) {
                const auto [it, fresh] = seen_keys_.emplace(section->label + "\n" + setting.key, setting.line);
                if (!fresh) {
                    errors_.push_back({file.path, setting.line, section->label, setting.key,
                                       "set twice (first at line " + std::to_string(it->second) + ")"});
                    continue;
                }
                section->values[setting.key] = {setting.value, {file.path, setting.line}, ++sequence_};
            }
        }
    }

private:
    // The merged section for a header, or nullptr (after reporting) when the
    // header is not one we know.
    Section* open(const std::string& path, const std::string& header, int line) {
        const auto space = header.find_first_of(" \t");
        const std::string kind = header.substr(0, space);
        const std::string name(space == std::string::npos ? "" : detail::trim(header.substr(space)));
        auto fail = [&](std::string message) {
            errors_.push_back({path, line, header, "", std::move(message)});
            return nullptr;
        };

        std::optional<Section>* single = nullptr;
        std::map<std::string, Section>* named = nullptr;
        if (kind == "master" && name.empty()) {
            single = &sections_.master;
        } else if (kind == "mail" && name.empty()) {
            single = &sections_.mail;
        } else if (kind == "latentd" && name.empty()) {
            single = &sections_.latentd;
        } else if (kind == "worker") {
            named = &sections_.workers;
        } else if (kind == "builder") {
            named = &sections_.builders;
        } else {
            return fail("unknown section");
        }

        std::string label = kind;
        if (named) {
            if (name.empty()) {
                return fail("missing " + kind + " name: use [" + kind + " NAME]");
            }
            if (!valid_worker_name(name)) {
                return fail("invalid " + kind + " name '" + name +
                            "': use 1-64 characters of A-Z a-z 0-9 . _ -, not starting with '.' or '-'");
            }
            label += " " + name;
        }
        const auto [first, fresh] = seen_sections_.emplace(label, line);
        if (!fresh) {
            // Keep going with the same section, so that its keys are still
            // checked (and a key repeated across both is "set twice").
            const std::string what = named ? kind + " name '" + name + "'" : "[" + kind + "] section";
            errors_.push_back({path, line, label, "",
                               "duplicate " + what + " (first declared at line " + std::to_string(first->second) + ")"});
        }

        Section* section = nullptr;
        if (single) {
            if (!*single) {
                single->emplace();
            }
            section = &**single;
        } else {
            section = &(*named)[name];
        }
        if (section->label.empty()) {
            section->label = label;
            section->name = name;
            section->origin = {path, line};
        }
        return section;
    }

    Sections& sections_;
    std::vector<Error>& errors_;
    std::map<std::string, int> seen_sections_;   // label -> header line, in the current file
    std::map<std::string, int> seen_keys_;       // label "\n" key -> line, in the current file
    std::size_t sequence_ = 0;
};

// The drop-ins: regular files (or links to them) named *.ini, not hidden, in
// byte order of their names. A missing directory means none.
std::vector<std::string> dropin_files(const std::filesystem::path& dir, std::vector<Error>& errors) {
    namespace fs = std::filesystem;
    std::vector<std::string> names;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec) {
        if (ec != std::errc::no_such_file_or_directory) {
            errors.push_back({dir.string(), 0, "", "", ec.message()});
        }
        return {};
    }
    for (; it != fs::directory_iterator(); it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.size() > 4 && name[0] != '.' && name.ends_with(".ini") && it->is_regular_file(ec)) {
            if (!text::valid_utf8(name)) {
                // Its name would reach Describe and error replies, which must be UTF-8.
                errors.push_back({(dir / text::for_log(name)).string(), 0, "", "",
                                  "file name is not valid UTF-8; rename it"});
                continue;
            }
            names.push_back(name);
        }
    }
    if (ec) {
        errors.push_back({dir.string(), 0, "", "", ec.message()});
    }
    std::sort(names.begin(), names.end());
    std::vector<std::string> paths;
    for (const auto& name : names) {
        paths.push_back((dir / name).string());
    }
    return paths;
}

// Errors in file order (the order they were read in), then by line.
void sort_errors(std::vector<Error>& errors, const std::vector<std::string>& files) {
    auto rank = [&](const Error& e) {
        const auto it = std::find(files.begin(), files.end(), e.file);
        return std::pair(it - files.begin(), e.line);
    };
    std::stable_sort(errors.begin(), errors.end(), [&](const Error& a, const Error& b) { return rank(a) < rank(b); });
}

}  // namespace

LoadResult load(const std::filesystem::path& main_file, const Environment& env) {
    LoadResult result;
    auto& errors = result.errors;
    const auto main_ini = detail::read_ini(main_file.string(), errors);
    if (!main_ini) {
        return result;
    }

    Config config;
    Sections sections;
    FileMerger merger(sections, errors);
    config.files.push_back(main_ini->path);
    merger.merge(*main_ini);

    std::vector<std::string> order{main_ini->path};
    const auto dropin_dir = main_file.parent_path() / "master.d";
    for (const auto& path : dropin_files(dropin_dir, errors)) {
        order.push_back(path);
        if (const auto ini = detail::read_ini(path, errors)) {
            config.files.push_back(path);
            merger.merge(*ini);
        }
    }

    detail::interpret(sections, env, config, errors);
    sort_errors(errors, order);
    if (errors.empty()) {
        result.config = std::move(config);
    }
    return result;
}

LoadResult load(const std::filesystem::path& main_file) {
    return load(main_file, current_environment());
}

LoadResult load_for_master(const std::filesystem::path& main_file, const Environment& env) {
    LoadResult result = load(main_file, env);
    if (!result.config) {
        return result;
    }
    const Config& c = *result.config;
    const std::string file = main_file.string();
    if (!c.master.declared) {
        result.errors.push_back({file, 0, "", "",
                                 "no [master] section in this file or master.d/: the file looks empty or half "
                                 "written; the master needs [master] (it may be empty) to take it"});
    }
    if (c.workers.empty()) {
        result.errors.push_back({file, 0, "", "",
                                 "no [worker NAME] section in this file or master.d/: a master without workers "
                                 "would stop every worker it has"});
    }
    if (!result.errors.empty()) {
        result.config.reset();
    }
    return result;
}

LoadResult load_for_master(const std::filesystem::path& main_file) {
    return load_for_master(main_file, current_environment());
}

}  // namespace by::config
