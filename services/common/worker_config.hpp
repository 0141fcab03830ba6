// A worker's own file: /etc/buildyard/workers/NAME.ini.
//
//   master = bus                 ; "bus" (local, system bus) or host:port (remote)
//   password = ...               ; or password_file = PATH, or password_credential = NAME
//   basedir = /var/lib/buildyard-worker/NAME
//   admin = Jane Doe <jane@example.org>
//   kill_timeout = 10            ; seconds between SIGTERM and SIGKILL on cancel
//   reconnect_max = 60           ; remote: longest wait between reconnect attempts, seconds
//
// All keys sit outside any section or in a [worker] section. The file is
// optional for a local worker; every key has a default.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/config.hpp"

namespace by::config {

struct WorkerSelf {
    std::string name;
    std::string master = "bus";
    std::string password;
    std::string basedir;           // default: $STATE_DIRECTORY or /var/lib/buildyard-worker/NAME
    std::string admin;
    unsigned kill_timeout = 10;
    unsigned reconnect_max = 60;
};

struct WorkerSelfResult {
    std::optional<WorkerSelf> config;
    std::vector<Error> errors;
};

// Reads `file` if it exists. A missing file is not an error when
// `required` is false (the defaults apply).
WorkerSelfResult load_worker(const std::string& name, const std::filesystem::path& file, bool required,
                             const Environment& env);

}  // namespace by::config
