#include "common/worker_config.hpp"

#include <algorithm>
#include <cerrno>
#include <map>
#include <string>
#include <system_error>

#include "common/config_ini.hpp"
#include "common/config_values.hpp"

namespace by::config {

namespace {

struct Setting {
    std::string value;
    int line = 0;
    std::string section;   // "" (before any header) or "worker"
};

// Collects the settings of the file: those before any header and those in
// [worker] share one namespace. Anything else is reported.
std::map<std::string, Setting> collect(const detail::IniFile& file, std::vector<Error>& errors) {
    std::map<std::string, Setting> settings;
    int worker_header = 0;
    for (const auto& section : file.sections) {
        if (section.line != 0) {
            if (section.header != "worker") {
                errors.push_back({file.path, section.line, section.header, "",
                                  "unknown section (a worker's file has only [worker], or no section at all)"});
                continue;
            }
            if (worker_header != 0) {
                errors.push_back({file.path, section.line, section.header, "",
                                  "duplicate [worker] section (first declared at line " +
                                      std::to_string(worker_header) + ")"});
            } else {
                worker_header = section.line;
            }
        }
        for (const auto& s : section.settings) {
            const auto [it, fresh] = settings.emplace(s.key, Setting{s.value, s.line, section.header});
            if (!fresh) {
                errors.push_back({file.path, s.line, section.header, s.key,
                                  "set twice (first at line " + std::to_string(it->second.line) + ")"});
            }
        }
    }
    return settings;
}

constexpr const char* host_port_form =
    "HOST:PORT with a port from 1 to 65535 (an IPv6 address as [::1]:9989)";
constexpr const char* fingerprint_form = "sha256: and 64 hex digits, as buildyardctl status shows on the master";

// " (entry N)" when the value is a list, so the admin finds the bad one.
std::string entry(std::size_t i, std::size_t count) {
    return count > 1 ? " (entry " + std::to_string(i + 1) + ")" : "";
}

// Entries separated by blanks instead of commas are one invalid entry.
std::string comma_hint(std::string_view item) {
    return item.find_first_of(" \t") != std::string_view::npos ? "; separate several with commas" : "";
}

}  // namespace

std::optional<std::vector<std::string>> parse_master_list(std::string_view value, std::string& error) {
    const auto items = detail::split_list(value);
    if (items.size() <= 1) {
        // One master, spelt as before lists existed (and the same messages).
        const std::string one = items.empty() ? std::string() : items[0];
        if (one == "bus" || parse_host_port(one)) {
            return std::vector<std::string>{one};
        }
        error = "invalid value '" + std::string(value) + "': expected bus or " + host_port_form + comma_hint(one);
        return std::nullopt;
    }
    std::vector<std::string> masters;
    for (std::size_t i = 0; i < items.size(); ++i) {
        const std::string& item = items[i];
        if (item.empty()) {
            error = "empty entry " + std::to_string(i + 1) + " in '" + std::string(value) + "'";
        } else if (item == "bus") {
            error = "bus stands alone: a local worker belongs to the master of its own host; list only remote "
                    "masters, as HOST:PORT";
        } else if (!parse_host_port(item)) {
            error = "invalid master '" + item + "'" + entry(i, items.size()) + ": expected " + host_port_form +
                    comma_hint(item);
        } else if (std::find(masters.begin(), masters.end(), item) != masters.end()) {
            error = "'" + item + "' is listed twice";
        } else {
            masters.push_back(item);
            continue;
        }
        return std::nullopt;
    }
    return masters;
}

std::optional<std::vector<std::string>> parse_fingerprint_list(std::string_view value, std::string& error) {
    const auto items = detail::split_list(value);
    if (items.size() <= 1) {
        if (auto fp = parse_fingerprint(items.empty() ? std::string_view() : std::string_view(items[0]))) {
            return std::vector<std::string>{*fp};
        }
        error = "invalid fingerprint '" + std::string(value) + "': expected " + fingerprint_form +
                comma_hint(items.empty() ? std::string_view() : std::string_view(items[0]));
        return std::nullopt;
    }
    std::vector<std::string> fingerprints;
    for (std::size_t i = 0; i < items.size(); ++i) {
        const auto fp = parse_fingerprint(items[i]);
        if (items[i].empty()) {
            error = "empty entry " + std::to_string(i + 1) + " in '" + std::string(value) + "'";
        } else if (!fp) {
            error = "invalid fingerprint '" + items[i] + "'" + entry(i, items.size()) + ": expected " +
                    fingerprint_form + comma_hint(items[i]);
        } else if (std::find(fingerprints.begin(), fingerprints.end(), *fp) != fingerprints.end()) {
            error = "'" + items[i] + "' is listed twice";
        } else {
            fingerprints.push_back(*fp);
            continue;
        }
        return std::nullopt;
    }
    return fingerprints;
}

WorkerSelfResult load_worker(const std::string& name, const std::filesystem::path& file, bool required,
                             const Environment& env) {
    WorkerSelfResult result;
    auto& errors = result.errors;
    const std::string path = file.string();
    if (!valid_worker_name(name)) {
        errors.push_back({path, 0, "", "",
                          "invalid worker name '" + name +
                              "': use 1-64 characters of A-Z a-z 0-9 . _ -, not starting with '.' or '-'"});
        return result;
    }

    WorkerSelf self;
    self.name = name;
    self.basedir = env.state_directory.empty() ? "/var/lib/buildyard-worker/" + name : env.state_directory;

    std::error_code ec;
    if (!std::filesystem::exists(file, ec) && !ec) {
        if (required) {
            errors.push_back({path, 0, "", "", detail::errno_message(ENOENT)});
        } else {
            result.config = std::move(self);
        }
        return result;
    }
    const auto ini = detail::read_ini(path, errors);
    if (!ini) {
        return result;
    }
    const auto settings = collect(*ini, errors);
    auto bad = [&](const std::string& key, std::string message) {
        const Setting& s = settings.at(key);
        errors.push_back({path, s.line, s.section, key, std::move(message)});
    };

    std::vector<std::string> password_keys;
    for (const auto& [key, s] : settings) {
        if (key == "master") {
            std::string error;
            if (auto masters = parse_master_list(s.value, error)) {
                self.masters = std::move(*masters);
            } else {
                bad(key, std::move(error));
            }
        } else if (key == "password" || key == "password_file" || key == "password_credential") {
            password_keys.push_back(key);
        } else if (key == "basedir") {
            if (!s.value.empty() && s.value[0] == '/') {
                self.basedir = s.value;
            } else {
                bad(key, "'" + s.value + "' is not an absolute path");
            }
        } else if (key == "admin") {
            self.admin = s.value;
        } else if (key == "kill_timeout") {
            const auto value = detail::parse_uint(s.value, detail::max_seconds);
            if (value && *value > 0) {
                self.kill_timeout = static_cast<unsigned>(*value);
            } else {
                bad(key, "invalid value '" + s.value + "': expected a positive number of seconds");
            }
        } else if (key == "umask") {
            // Octal, as umask(1) prints it: 022, 0027, 0077.
            const bool octal = !s.value.empty() && s.value.size() <= 4 &&
                               s.value.find_first_not_of("01234567") == std::string::npos;
            if (octal && std::stoul(s.value, nullptr, 8) <= 0777) {
                self.umask = static_cast<mode_t>(std::stoul(s.value, nullptr, 8));
            } else {
                bad(key, "invalid value '" + s.value + "': expected an octal mask from 0 to 0777, e.g. 022");
            }
        } else if (key == "reconnect_max") {
            const auto value = detail::parse_uint(s.value, 86400);
            if (value && *value > 0) {
                self.reconnect_max = static_cast<unsigned>(*value);
            } else {
                bad(key, "invalid value '" + s.value + "': expected a number of seconds from 1 to 86400");
            }
        } else if (key == "isolation") {
            if (s.value == "auto" || s.value == "subreaper") {
                self.units = s.value == "auto";
            } else {
                bad(key, "invalid value '" + s.value + "': expected auto or subreaper");
            }
        } else if (key == "tls") {
            if (const auto yes = detail::parse_yes_no(s.value)) {
                self.tls = *yes;
            } else {
                bad(key, "invalid value '" + s.value + "': expected yes or no");
            }
        } else if (key == "master_fingerprint") {
            std::string error;
            if (auto fps = parse_fingerprint_list(s.value, error)) {
                self.master_fingerprints = std::move(*fps);
            } else {
                bad(key, std::move(error));
            }
        } else if (key == "tls_ca_file" || key == "tls_certificate" || key == "tls_key") {
            std::string error;
            if (detail::readable_path(s.value, error)) {
                (key == "tls_ca_file" ? self.tls_ca_file
                                      : key == "tls_key" ? self.tls_key : self.tls_certificate) = s.value;
            } else {
                bad(key, error);
            }
        } else {
            bad(key, "unknown key");
        }
    }
    if (settings.contains("master_fingerprint") && settings.contains("tls_ca_file")) {
        bad("tls_ca_file", "conflicts with master_fingerprint: set one of them");
    }
    if (settings.contains("tls_certificate") != settings.contains("tls_key")) {
        bad(settings.contains("tls_key") ? "tls_key" : "tls_certificate",
            "set both tls_certificate and tls_key, or neither");
    }
    if (settings.contains("master") && errors.empty()) {
        if (const std::string missing = missing_trust(self); !missing.empty()) {
            bad("master", missing);
        }
    }

    std::sort(password_keys.begin(), password_keys.end(),
              [&](const std::string& a, const std::string& b) { return settings.at(a).line < settings.at(b).line; });
    for (std::size_t i = 1; i < password_keys.size(); ++i) {
        bad(password_keys[i], "conflicts with " + password_keys[0] + " (line " +
                                  std::to_string(settings.at(password_keys[0]).line) +
                                  "): set only one of password, password_file and password_credential");
    }
    if (password_keys.size() == 1) {
        std::string error;
        const auto& key = password_keys[0];
        if (auto secret = detail::resolve_password(key, settings.at(key).value, env.credentials_directory, error)) {
            self.password = std::move(*secret);
        } else {
            bad(key, error);
        }
    }
    if (password_keys.empty() && settings.contains("master") && !self.local()) {
        bad("master", "a remote master needs password, password_file or password_credential");
    }

    if (errors.empty()) {
        result.config = std::move(self);
    }
    return result;
}

std::string missing_trust(const WorkerSelf& self) {
    if (self.local() || !self.tls || !self.master_fingerprints.empty() || !self.tls_ca_file.empty()) {
        return {};
    }
    return "a remote master over TLS needs master_fingerprint = sha256:HEX (the master's certificate; "
           "buildyardctl status shows it) or tls_ca_file = PATH (CAs that sign it for the host name in master =); "
           "tls = no here and in the master's [master] section for plain TCP";
}

}  // namespace by::config
